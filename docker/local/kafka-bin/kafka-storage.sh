#!/bin/sh
# apache/kafka's bin/kafka-storage.sh, on the jars in /opt/kafka/libs
exec java -Xmx256m -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml -cp '/opt/kafka/libs/*' kafka.tools.StorageTool "$@"
