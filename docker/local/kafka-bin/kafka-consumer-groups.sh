#!/bin/sh
# apache/kafka's bin/kafka-consumer-groups.sh, on the jars in /opt/kafka/libs
exec java -Xmx128m -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml -cp '/opt/kafka/libs/*' org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@"
