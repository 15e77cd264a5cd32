#!/bin/sh
# apache/kafka's bin/kafka-broker-api-versions.sh, on the jars in /opt/kafka/libs
exec java -Xmx64m -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml -cp '/opt/kafka/libs/*' org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
