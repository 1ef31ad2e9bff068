{{/* Names, labels and the values that several templates derive. */}}

{{- define "optismith.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "optismith.fullname" -}}
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

{{- define "optismith.selectorLabels" -}}
app.kubernetes.io/name: {{ include "optismith.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "optismith.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "optismith.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: optismith
{{- end }}

{{- define "optismith.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "optismith.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, the tag defaulting to the chart's appVersion. Argument: (list $image $root). */}}
{{- define "optismith.image" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}

{{/* The permissions, from the single source files/rbac.yaml. */}}
{{- define "optismith.rbacRules" -}}
{{- .Files.Get "files/rbac.yaml" | fromYaml | toJson }}
{{- end }}

{{/* Worker environment: the user's extraEnv plus the S3 settings workers share with the operator. */}}
{{- define "optismith.workerEnv" -}}
{{- $env := dict }}
{{- with .Values.s3.endpoint }}{{- $_ := set $env "OPTISMITH_S3_ENDPOINT" . }}{{- end }}
{{- with .Values.s3.region }}{{- $_ := set $env "AWS_REGION" . }}{{- end }}
{{- if .Values.s3.pathStyle }}{{- $_ := set $env "OPTISMITH_S3_PATH_STYLE" "true" }}{{- end }}
{{- $env = merge (deepCopy .Values.worker.extraEnv) $env }}
{{- toJson $env }}
{{- end }}
