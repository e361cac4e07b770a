{{/*
Expand the name of the chart.
*/}}
{{- define "loan-prequal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A default fully qualified app name, truncated so that "-<component>" suffixes still fit in 63
characters. When the release name already contains the chart name it is used as is.
*/}}
{{- define "loan-prequal.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "loan-prequal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of the release (every component).
*/}}
{{- define "loan-prequal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "loan-prequal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels of the release.
*/}}
{{- define "loan-prequal.labels" -}}
helm.sh/chart: {{ include "loan-prequal.chart" . }}
{{ include "loan-prequal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: loan-prequal
{{- end }}

{{/*
Selector labels of one component: (dict "ctx" $ "component" "api").
*/}}
{{- define "loan-prequal.componentSelectorLabels" -}}
{{ include "loan-prequal.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of one component: (dict "ctx" $ "component" "api").
*/}}
{{- define "loan-prequal.componentLabels" -}}
{{ include "loan-prequal.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
The ServiceAccount the workloads run as.
*/}}
{{- define "loan-prequal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "loan-prequal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: a digest wins over a tag; the tag defaults to the appVersion.
*/}}
{{- define "loan-prequal.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Names the operator derives from the LoanPipeline (docs/configuration.md).
*/}}
{{- define "loan-prequal.pipelineName" -}}
{{- include "loan-prequal.fullname" . }}
{{- end }}
{{- define "loan-prequal.pipelineConfigMap" -}}
{{- include "loan-prequal.pipelineName" . }}-pipeline
{{- end }}
{{- define "loan-prequal.panKeySecret" -}}
{{- default (printf "%s-pan-keys" (include "loan-prequal.fullname" .)) .Values.pipeline.encryption.keySecretName }}
{{- end }}

{{/*
Environment every process shares: the database URL from its Secret, the log level, and the
pipeline ConfigMap the operator writes (topics, bootstrap servers, decision policy).
Called with (dict "ctx" $ "role" "api"): the role's Secret from database.roleSecrets, or
database.secretName when that role has none (one role for everything, the fallback).
*/}}
{{- define "loan-prequal.commonEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "loan-prequal.databaseSecret" . }}
      key: url
- name: LOG_LEVEL
  value: {{ .ctx.Values.logLevel | quote }}
{{- end }}
{{/*
How a Kafka client of the release connects: (dict "ctx" $ "principal" "publisher"). Over SASL
the user name and password come from the service's credentials Secret (kafka.credentialSecrets,
by default the operator's `<pipeline>-kafka-<principal>`); the CA from kafka.caSecret.
*/}}
{{- define "loan-prequal.kafkaEnv" -}}
{{- $kafka := .ctx.Values.kafka }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ $kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL_" $kafka.securityProtocol }}
{{- $secret := default (printf "%s-kafka-%s" (include "loan-prequal.pipelineName" .ctx) .principal) (get ($kafka.credentialSecrets | default dict) .principal) }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $kafka.saslMechanism | quote }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: username
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: password
{{- end }}
{{- if $kafka.caSecret.name }}
- name: KAFKA_SSL_CA_LOCATION
  value: /etc/prequal/kafka-ca/{{ $kafka.caSecret.key }}
{{- end }}
{{- end }}
{{- define "loan-prequal.kafkaCaMount" -}}
{{- if .Values.kafka.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/prequal/kafka-ca
  readOnly: true
{{- end }}
{{- end }}
{{- define "loan-prequal.kafkaCaVolume" -}}
{{- if .Values.kafka.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.caSecret.name }}
    items:
      - key: {{ .Values.kafka.caSecret.key }}
        path: {{ .Values.kafka.caSecret.key }}
{{- end }}
{{- end }}
{{- define "loan-prequal.databaseSecret" -}}
{{- $secrets := .ctx.Values.database.roleSecrets | default dict }}
{{- default .ctx.Values.database.secretName (get $secrets .role) }}
{{- end }}
{{- define "loan-prequal.pipelineEnvFrom" -}}
- configMapRef:
    name: {{ include "loan-prequal.pipelineConfigMap" . }}
{{- end }}

{{/*
Pod annotations that roll every workload when the key version changes: each process reads the
keyring once at start, so a rotated Secret takes effect only in new pods.
*/}}
{{- define "loan-prequal.rolloutAnnotations" -}}
prequal.dev/key-version: {{ .Values.pipeline.encryption.keyVersion | quote }}
prequal.dev/index-key-version: {{ .Values.pipeline.encryption.indexKeyVersion | quote }}
prequal.dev/webhook-key-version: {{ .Values.pipeline.encryption.webhookKeyVersion | quote }}
{{- end }}

{{/*
The key Secret as SECRETS_DIR (one file per setting: sealing_private_keys, ...): the credit
service's only. It holds the HPKE private keys that open every applicant's data key.
*/}}
{{- define "loan-prequal.panKeysVolume" -}}
- name: pan-keys
  secret:
    secretName: {{ include "loan-prequal.panKeySecret" . }}
    defaultMode: 0440
{{- end }}
{{- define "loan-prequal.panKeysMount" -}}
- name: pan-keys
  mountPath: /var/run/secrets/prequal
  readOnly: true
{{- end }}

{{/*
The API's keys as SECRETS_DIR, one projected volume of two Secrets: the operator's projection of
the key Secret without any private key (sealing_public_keys, sealing_active_key_id, and the
webhook dispatcher's webhook_sealing_public_keys, webhook_sealing_active_key_id), and the
blind-index keys (pan_index_keys, pan_index_active_key_id, and pan_blind_index_key when the
pipeline predates them), which no other workload mounts. The API can seal but never open.
*/}}
{{- define "loan-prequal.apiKeysVolume" -}}
- name: api-keys
  projected:
    defaultMode: 0440
    sources:
      # Named keys only: an -api Secret written by an older operator still holds
      # pan_blind_index_key, which the -index Secret holds too (one file, one source).
      - secret:
          name: {{ include "loan-prequal.panKeySecret" . }}-api
          items:
            - {key: sealing_public_keys, path: sealing_public_keys}
            - {key: sealing_active_key_id, path: sealing_active_key_id}
            - {key: webhook_sealing_public_keys, path: webhook_sealing_public_keys}
            - {key: webhook_sealing_active_key_id, path: webhook_sealing_active_key_id}
      - secret:
          name: {{ include "loan-prequal.panKeySecret" . }}-index
{{- end }}
{{- define "loan-prequal.apiKeysMount" -}}
- name: api-keys
  mountPath: /var/run/secrets/prequal
  readOnly: true
{{- end }}

{{/*
The webhook dispatcher's key Secret as SECRETS_DIR: the operator generates it
(<keySecret>-webhooks, webhook_sealing_private_keys, ...); only the dispatcher mounts it. Its
private key opens the endpoints' sealed signing secrets, nothing else.
*/}}
{{- define "loan-prequal.webhookKeysVolume" -}}
- name: webhook-keys
  secret:
    secretName: {{ include "loan-prequal.panKeySecret" . }}-webhooks
    defaultMode: 0440
{{- end }}
{{- define "loan-prequal.webhookKeysMount" -}}
- name: webhook-keys
  mountPath: /var/run/secrets/prequal
  readOnly: true
{{- end }}

{{/*
The webhook SSRF guard's allow-list (WEBHOOK_ALLOWED_NETWORKS) for the API (registration) and
the dispatcher (delivery): empty refuses every non-public address.
*/}}
{{- define "loan-prequal.webhookEgressEnv" -}}
- name: WEBHOOK_ALLOWED_NETWORKS
  value: {{ join "," .Values.webhookEgress.allowedNetworks | quote }}
{{- end }}

{{/*
A writable /tmp: the root filesystem is read-only.
*/}}
{{- define "loan-prequal.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
{{- define "loan-prequal.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
Scheduling fields of a pod, from a component's values.
*/}}
{{- define "loan-prequal.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
kube-score checks a workload of this chart turns off, with the reason in docs/kubernetes.md
("What kube-score says"): no CPU limits, by design (kube-score has one check for every
resource, so memory limits and requests are checked by the chart's own tests instead).
*/}}
{{- define "loan-prequal.kubeScoreIgnore" -}}
kube-score/ignore: container-resources
{{- end }}
