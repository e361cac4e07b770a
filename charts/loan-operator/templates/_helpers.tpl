{{/*
Expand the name of the chart.
*/}}
{{- define "loan-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A default fully qualified app name, truncated at 63 characters (the DNS label limit).
When the release name already contains the chart name it is used as is.
*/}}
{{- define "loan-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "loan-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The namespace the operator is installed into.
*/}}
{{- define "loan-operator.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/*
Selector labels: stable for the life of the release, so never the version.
*/}}
{{- define "loan-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "loan-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "loan-operator.labels" -}}
helm.sh/chart: {{ include "loan-operator.chart" . }}
{{ include "loan-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: loan-prequal
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "loan-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "loan-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: a digest wins over a tag; the tag defaults to the appVersion.
*/}}
{{- define "loan-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
kube-score checks the operator and its test pod turn off, with the reason in docs/kubernetes.md
("What kube-score says"): no CPU limits, by design (kube-score has one check for every
resource, so memory limits and requests are checked by the chart's own tests instead).
*/}}
{{- define "loan-operator.kubeScoreIgnore" -}}
kube-score/ignore: container-resources
{{- end }}

{{/*
The operator's rules, the same in the ClusterRole (watching every namespace) and in each
namespaced Role (watchNamespaces). manifests/operator/rbac.yaml is the source; a test compares
them. Every rule is about namespaced objects: with watchNamespaces the operator needs nothing
cluster-wide (kopf's CRD scanning is off, and it watches named namespaces, never Namespaces).
*/}}
{{- define "loan-operator.rules" -}}
# kopf watches LoanPipelines and adds no finalizer; it patches one only to strip the finalizer
# prequal.dev/kafka-access an earlier version held (so its deletion does not hang). The scaler
# lists them to see which pipeline named a Deployment first; the orphan sweep lists them to
# learn which still exist (a list by name: no `get`).
- apiGroups: [prequal.dev]
  resources: [loanpipelines]
  verbs: [list, watch, patch]
# The worker writes the status subresource.
- apiGroups: [prequal.dev]
  resources: [loanpipelines/status]
  verbs: [patch]
# Events about every change it makes (and kopf's own warnings).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Key Secrets: generated when absent, appended to on rotation, only those it labelled and
# annotated for the pipeline; Kafka credentials Secrets: created, and given an ownerReference
# so the garbage collector deletes them with the pipeline (the operator deletes nothing); the
# database Secret: read. RBAC cannot name Secrets that do not
# exist yet, so the operator's code keeps to its own (docs/operator.md).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch]
# The pipeline ConfigMap the services read.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch]
# Consumers are scaled through the scale subresource only.
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [get, patch]
{{- end }}
