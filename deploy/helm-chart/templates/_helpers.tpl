{{/*
helm-ai-kernel.name: the chart name, or nameOverride.
Usage: {{ include "helm-ai-kernel.name" . }}
*/}}
{{- define "helm-ai-kernel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
helm-ai-kernel.fullname: fullnameOverride; else the release name when it already contains the
chart name; else <release>-<chart>. Truncated to 63 characters (DNS label).
Usage: {{ include "helm-ai-kernel.fullname" . }}
*/}}
{{- define "helm-ai-kernel.fullname" -}}
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
helm-ai-kernel.chart: chart name and version for the helm.sh/chart label.
Usage: {{ include "helm-ai-kernel.chart" . }}
*/}}
{{- define "helm-ai-kernel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
helm-ai-kernel.labels: common labels on every object.
Usage: {{ include "helm-ai-kernel.labels" . | nindent 4 }}
*/}}
{{- define "helm-ai-kernel.labels" -}}
helm.sh/chart: {{ include "helm-ai-kernel.chart" . | quote }}
{{ include "helm-ai-kernel.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: helm-ai-kernel
{{- end }}

{{/*
helm-ai-kernel.selectorLabels: name + instance only. Selectors are immutable across upgrades.
Usage: {{ include "helm-ai-kernel.selectorLabels" . | nindent 6 }}
*/}}
{{- define "helm-ai-kernel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "helm-ai-kernel.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{/*
helm-ai-kernel.serviceAccountName: the ServiceAccount the pod runs as.
Usage: {{ include "helm-ai-kernel.serviceAccountName" . }}
*/}}
{{- define "helm-ai-kernel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "helm-ai-kernel.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
helm-ai-kernel.image: repository:(tag or appVersion).
Usage: {{ include "helm-ai-kernel.image" . }}
*/}}
{{- define "helm-ai-kernel.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
helm-ai-kernel.signingSecretName: the Secret holding signing-key (existing or chart-managed).
Usage: {{ include "helm-ai-kernel.signingSecretName" . }}
*/}}
{{- define "helm-ai-kernel.signingSecretName" -}}
{{- default (printf "%s-signing" (include "helm-ai-kernel.fullname" .)) .Values.helm.signing.existingSecret }}
{{- end }}

{{/*
helm-ai-kernel.authSecretName: the Secret holding the admin/service API keys.
Usage: {{ include "helm-ai-kernel.authSecretName" . }}
*/}}
{{- define "helm-ai-kernel.authSecretName" -}}
{{- default (printf "%s-auth" (include "helm-ai-kernel.fullname" .)) .Values.helm.auth.existingSecret }}
{{- end }}

{{/*
helm-ai-kernel.policyMountPath: where the policy volume is mounted (mountedFile.mountPath, else the legacy alias).
Usage: {{ include "helm-ai-kernel.policyMountPath" . }}
*/}}
{{- define "helm-ai-kernel.policyMountPath" -}}
{{- default .Values.helm.policy.mountPath .Values.helm.policy.source.mountedFile.mountPath }}
{{- end }}

{{/*
helm-ai-kernel.policyConfigMapName: the policy ConfigMap (existing, legacy alias, or chart-managed <fullname>-config).
Usage: {{ include "helm-ai-kernel.policyConfigMapName" . }}
*/}}
{{- define "helm-ai-kernel.policyConfigMapName" -}}
{{- $mf := .Values.helm.policy.source.mountedFile }}
{{- default (default (printf "%s-config" (include "helm-ai-kernel.fullname" .)) .Values.helm.policy.configMap) $mf.existingConfigMap }}
{{- end }}

{{/*
helm-ai-kernel.chartManagedPolicy: "true" when the chart renders the policy ConfigMap itself.
Usage: {{ if eq (include "helm-ai-kernel.chartManagedPolicy" .) "true" }}
*/}}
{{- define "helm-ai-kernel.chartManagedPolicy" -}}
{{- $mf := .Values.helm.policy.source.mountedFile }}
{{- if or .Values.helm.policy.configMap $mf.existingConfigMap $mf.existingSecret }}false{{ else }}true{{ end }}
{{- end }}

{{/*
helm-ai-kernel.pvcName: the data claim (existing or <fullname>-data).
Usage: {{ include "helm-ai-kernel.pvcName" . }}
*/}}
{{- define "helm-ai-kernel.pvcName" -}}
{{- default (printf "%s-data" (include "helm-ai-kernel.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/*
helm-ai-kernel.databaseURL: inline postgres URL for non-production renders without a Secret.
Usage: {{ include "helm-ai-kernel.databaseURL" . }}
*/}}
{{- define "helm-ai-kernel.databaseURL" -}}
{{- $pg := .Values.helm.storage.postgres }}
{{- /* user, password and database escaped: a value never adds a host, a parameter or a path */}}
{{- printf "postgres://%s:%s@%s:%v/%s?sslmode=%s" (urlquery $pg.user) (urlquery $pg.password) $pg.host $pg.port (urlquery $pg.database) $pg.sslMode }}
{{- end }}

{{/*
helm-ai-kernel.bool01: "1" or "0" for a boolean env var.
Usage: {{ include "helm-ai-kernel.bool01" .Values.helm.production | quote }}
*/}}
{{- define "helm-ai-kernel.bool01" -}}
{{- if . }}1{{ else }}0{{ end }}
{{- end }}

{{/*
helm-ai-kernel.singleWriterData: "true" when /data is a claim only one pod may write (not
ReadWriteMany): such a pod must stop before its successor starts (strategy Recreate).
Usage: {{ if eq (include "helm-ai-kernel.singleWriterData" .) "true" }}...{{ end }}
*/}}
{{- define "helm-ai-kernel.singleWriterData" -}}
{{- if and .Values.persistence.enabled (not (has "ReadWriteMany" .Values.persistence.accessModes)) }}true{{ else }}false{{ end }}
{{- end }}
