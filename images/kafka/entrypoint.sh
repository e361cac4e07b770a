#!/bin/sh
# Writes server.properties from the KAFKA_* environment, formats the log directory on first
# start (cluster id $CLUSTER_ID), then runs the broker in the foreground.
set -eu
config_dir=${KAFKA_CONFIG_DIR:-/tmp/kafka-config}
mkdir -p "$config_dir"
properties=$config_dir/server.properties
# Not broker settings: the JVM's options and this image's own knobs.
skip='^KAFKA_(HEAP_OPTS|OPTS|JVM_PERFORMANCE_OPTS|LOG4J_OPTS|GC_LOG_OPTS|JMX_OPTS|DEBUG|LOG_LEVEL|CONFIG_DIR|HOME)='
env | grep '^KAFKA_' | grep -Ev "$skip" | while IFS='=' read -r name value; do
  key=$(printf '%s' "${name#KAFKA_}" | tr '[:upper:]' '[:lower:]' | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
  printf '%s=%s\n' "$key" "$value"
done >"$properties"
grep -q '^log.dirs=' "$properties" || echo "log.dirs=/var/lib/kafka/data" >>"$properties"

# No globbing from here on: `libs/*` is for Java's class path, not for the shell.
set -f
java="java ${KAFKA_HEAP_OPTS:-} -XX:+UseG1GC -XX:-UsePerfData -Djava.awt.headless=true
  -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties ${KAFKA_OPTS:-} -cp /opt/kafka/libs/*"
# shellcheck disable=SC2086 # $java is a word list
$java kafka.tools.StorageTool format --ignore-formatted "--cluster-id=$CLUSTER_ID" -c "$properties"
# shellcheck disable=SC2086
exec $java kafka.Kafka "$properties"
