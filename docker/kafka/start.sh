#!/bin/sh
# The compose stack's Kafka: KRaft, one node, and no client without a SCRAM-SHA-512 login.
#
#   KAFKA_WORKER_PASSWORD=... KAFKA_PRODUCER_PASSWORD=... docker/kafka/start.sh
#
# Two users: `worker` (the workers, the one-shots and the trainer) and `producer` (event
# producers, e.g. from the host). Both listeners clients reach are SASL_PLAINTEXT with
# SCRAM-SHA-512: `kafka:9092` inside the compose network and `localhost:29092` on the host
# (bound to 127.0.0.1 there by compose). The controller and the broker's own listener are
# PLAINTEXT on 127.0.0.1 inside the container (the healthcheck uses the latter): nothing
# outside the container reaches them. The users are written when the storage is formatted,
# on the first start; to change a password later, use kafka-configs.sh --alter
# --add-config 'SCRAM-SHA-512=[password=...]' --entity-type users --entity-name worker.
#
# Paths and ports default to the apache/kafka image's; tests/docker runs this script on
# the local broker's jars through KAFKA_BIN wrappers.
set -eu

BIN=${KAFKA_BIN:-/opt/kafka/bin}
DATA=${KAFKA_DATA:-/var/lib/kafka/data}
CONF=${KAFKA_CONF:-/tmp/server.properties}
PORT=${KAFKA_PORT:-9092}
HOST_PORT=${KAFKA_HOST_PORT:-29092}
CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
INTERNAL_PORT=${KAFKA_INTERNAL_PORT:-9094}
ADVERTISED=${KAFKA_ADVERTISED_HOST:-kafka}
PARTITIONS=${KAFKA_NUM_PARTITIONS:-6}
CLUSTER_ID=${KAFKA_CLUSTER_ID:-4L6g3nShT-eMCtK--X86sw}

for name in KAFKA_WORKER_PASSWORD KAFKA_PRODUCER_PASSWORD; do
  eval "value=\${$name:-}"
  case "$value" in
    "") echo "kafka: $name is not set (see docker/.env.example)" >&2; exit 2 ;;
    change-me*) echo "kafka: $name is still the placeholder of docker/.env.example" >&2; exit 2 ;;
    *[!A-Za-z0-9._~-]*)
      echo "kafka: $name may hold letters, digits and . _ ~ - only (e.g. openssl rand -hex 32)" >&2
      exit 2 ;;
  esac
done

scram="org.apache.kafka.common.security.scram.ScramLoginModule required;"
umask 077  # the file names no password, but keep it to ourselves anyway
cat >"$CONF" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=CLIENTS://:$PORT,HOST://:$HOST_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT,INTERNAL://127.0.0.1:$INTERNAL_PORT
advertised.listeners=CLIENTS://$ADVERTISED:$PORT,HOST://localhost:$HOST_PORT,INTERNAL://127.0.0.1:$INTERNAL_PORT
listener.security.protocol.map=CLIENTS:SASL_PLAINTEXT,HOST:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.clients.scram-sha-512.sasl.jaas.config=$scram
listener.name.host.scram-sha-512.sasl.jaas.config=$scram
log.dirs=$DATA
num.partitions=$PARTITIONS
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
EOF

"$BIN/kafka-storage.sh" format --ignore-formatted --cluster-id="$CLUSTER_ID" -c "$CONF" \
  --add-scram "SCRAM-SHA-512=[name=worker,password=$KAFKA_WORKER_PASSWORD]" \
  --add-scram "SCRAM-SHA-512=[name=producer,password=$KAFKA_PRODUCER_PASSWORD]"
exec "$BIN/kafka-server-start.sh" "$CONF"
