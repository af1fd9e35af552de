{{/*
What the cluster holds now, read with `lookup` at install and upgrade. `helm template` and
`--dry-run=client` see an empty cluster, so each gives its "nothing live" answer there. Tests
replace this file to play a live release.
*/}}

{{/* spec.replicas of a live Deployment (.name), or 0: (dict "ctx" $ "name" NAME). */}}
{{- define "modfleet.liveReplicas" -}}
{{- $d := lookup "apps/v1" "Deployment" .ctx.Release.Namespace .name -}}
{{- dig "spec" "replicas" 0 $d -}}
{{- end -}}

{{/* MODFLEET_CONSUMER_GROUP of the live worker Deployment, or "" before the first install. */}}
{{- define "modfleet.liveConsumerGroup" -}}
{{- $d := lookup "apps/v1" "Deployment" .Release.Namespace (include "modfleet.workerName" .) -}}
{{- range (dig "spec" "template" "spec" "containers" list $d) -}}
{{- range (get . "env" | default list) -}}
{{- if eq (get . "name") "MODFLEET_CONSUMER_GROUP" }}{{ get . "value" }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* data of the live credentials Secret (base64 values by key), as YAML; {} when absent. */}}
{{- define "modfleet.liveCredentials" -}}
{{- $s := lookup "v1" "Secret" .Release.Namespace (include "modfleet.credentialsName" .) -}}
{{- dig "data" dict $s | toYaml -}}
{{- end -}}
