{{/*
Names, labels and the environment shared by the chart's templates.
*/}}

{{- define "modfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name prefix, at most 52 characters so suffixes fit in 63. */}}
{{- define "modfleet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "modfleet.workerName" -}}{{ include "modfleet.fullname" . }}-worker{{- end -}}
{{- define "modfleet.inferenceName" -}}{{ include "modfleet.fullname" . }}-inference{{- end -}}
{{- define "modfleet.reviewsName" -}}{{ include "modfleet.fullname" . }}-reviews{{- end -}}
{{- define "modfleet.topicInitName" -}}{{ include "modfleet.fullname" . }}-topic-init{{- end -}}
{{- define "modfleet.policiesName" -}}{{ include "modfleet.fullname" . }}-policies{{- end -}}
{{- define "modfleet.credentialsName" -}}{{ include "modfleet.fullname" . }}-credentials{{- end -}}

{{- define "modfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "worker"). */}}
{{- define "modfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modfleet.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every label of one component's resources: (dict "ctx" $ "component" "worker"). */}}
{{- define "modfleet.labels" -}}
helm.sh/chart: {{ include "modfleet.chart" .ctx }}
{{ include "modfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: modfleet
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "modfleet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "modfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modfleet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Bootstrap servers as host:port,host:port (KEDA) from the faust URL list. */}}
{{- define "modfleet.bootstrapServers" -}}
{{- $servers := list -}}
{{- range (splitList ";" .Values.kafka.brokerUrl) -}}
{{- $s := trim . | trimPrefix "kafka://" -}}
{{- if $s }}{{ $servers = append $servers $s }}{{ end -}}
{{- end -}}
{{- join "," $servers -}}
{{- end -}}

{{- define "modfleet.kafkaSasl" -}}{{ hasPrefix "SASL" .Values.kafka.securityProtocol }}{{- end -}}
{{- define "modfleet.kafkaTls" -}}{{ hasSuffix "SSL" .Values.kafka.securityProtocol }}{{- end -}}
{{- define "modfleet.kafkaTlsMountPath" -}}/etc/modfleet/kafka-tls{{- end -}}
{{- define "modfleet.redisTlsMountPath" -}}/etc/modfleet/redis-tls{{- end -}}

{{/* Policy packs by file name: the chart's files/policies/ plus policies.extraFiles. */}}
{{- define "modfleet.policyFiles" -}}
{{- $files := dict -}}
{{- range $path, $_ := .Files.Glob "files/policies/*" -}}
{{- $_ := set $files (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- range $name, $content := .Values.policies.extraFiles -}}
{{- $_ := set $files $name $content -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{/* A values scalar as the environment spells it: whole numbers without an exponent. */}}
{{- define "modfleet.scalar" -}}
{{- if and (kindIs "float64" .) (eq (. | int64 | float64) .) -}}
{{- . | int64 -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* Most workers that may run at once: the autoscaler's maximum, else replicaCount. */}}
{{- define "modfleet.workerMaxReplicas" -}}
{{- $a := .Values.worker.autoscaling -}}
{{- if $a.keda.enabled }}{{ $a.keda.maxReplicas }}{{ else if $a.hpa.enabled }}{{ $a.hpa.maxReplicas }}{{ else }}{{ .Values.worker.replicaCount }}{{ end -}}
{{- end -}}

{{/* Fewest inference replicas that may run: the autoscaler's minimum, else replicaCount. */}}
{{- define "modfleet.inferenceMinReplicas" -}}
{{- $i := .Values.inference -}}
{{- if $i.autoscaling.enabled }}{{ $i.autoscaling.minReplicas }}{{ else }}{{ $i.replicaCount }}{{ end -}}
{{- end -}}

{{/*
spec.replicas of an autoscaled Deployment: the live count (the autoscaler's choice) and at least
minReplicas. Rendering it, rather than leaving it out, keeps an upgrade that turns autoscaling on
from dropping the field, which Kubernetes reads as 1. (dict "ctx" $ "name" NAME "min" N)
*/}}
{{- define "modfleet.autoscaledReplicas" -}}
{{- max (include "modfleet.liveReplicas" . | int64) (.min | int64) -}}
{{- end -}}

{{/* Credentials the chart generates (no existingSecret given), by Secret key. */}}
{{- define "modfleet.generatedKeys" -}}
{{- $keys := list -}}
{{- if and .Values.redis.auth (not .Values.redis.existingSecret) }}{{ $keys = append $keys "redis-password" }}{{ end -}}
{{- if not .Values.redis.cacheHmacKey.existingSecret }}{{ $keys = append $keys "cache-hmac-key" }}{{ end -}}
{{- if and .Values.inference.enabled (not .Values.inference.apiKey.existingSecret) }}{{ $keys = append $keys "inference-api-key" }}{{ end -}}
{{- toYaml $keys -}}
{{- end -}}

{{/* secretKeyRef of a credential: the user's Secret, else the chart's generated one. */}}
{{- define "modfleet.secretRef" -}}
secretKeyRef:
  name: {{ default (include "modfleet.credentialsName" .ctx) .secret | quote }}
  key: {{ ternary .key .generatedKey (not (empty .secret)) | quote }}
{{- end -}}

{{/* Checks across values that the schema cannot express; fails the render with a reason. */}}
{{- define "modfleet.validate" -}}
{{- $files := include "modfleet.policyFiles" . | fromYaml -}}
{{- if and (not .Values.policies.loadFolder) (not (hasKey $files .Values.policies.active)) -}}
{{- fail (printf "policies.active %q is not among the policy files: %s" .Values.policies.active (keys $files | sortAlpha | join ", ")) -}}
{{- end -}}
{{- /* The worker image has no vLLM ([gpu] extra): a pack it loads that runs the engine in the
worker process would crash-loop every worker. Packs are read as the workers read them: the
active one, or every *.yaml/*.yml with loadFolder. */ -}}
{{- range $name, $content := $files -}}
{{- if and (regexMatch "\\.ya?ml$" $name) (or $.Values.policies.loadFolder (eq $name $.Values.policies.active)) -}}
{{- $model := get (fromYaml $content) "model" -}}
{{- if kindIs "map" $model -}}
{{- range $field := list "backend" "fallback" -}}
{{- if eq (toString (get $model $field)) "vllm" -}}
{{- fail (printf "policy pack %s: model.%s vllm runs the vLLM engine inside the worker, which the worker image does not hold (no [gpu] extra): serve the model from vLLM pods (inference.enabled) and name backend openai" $name $field) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq (include "modfleet.kafkaSasl" .) "true" -}}
{{- if not (and .Values.kafka.sasl.username .Values.kafka.sasl.existingSecret) -}}
{{- fail "kafka.securityProtocol is SASL_*: set kafka.sasl.username and kafka.sasl.existingSecret (the Secret holding the password)" -}}
{{- end -}}
{{- end -}}
{{- if and (or .Values.kafka.tls.certKey .Values.kafka.tls.keyKey) (not .Values.kafka.tls.existingSecret) -}}
{{- fail "kafka.tls.certKey/keyKey need kafka.tls.existingSecret" -}}
{{- end -}}
{{- if and (or .Values.redis.urlKey .Values.redis.passwordKey) (not .Values.redis.existingSecret) -}}
{{- fail "redis.urlKey/passwordKey need redis.existingSecret" -}}
{{- end -}}
{{- if .Values.inference.enabled -}}
{{- range $field := list "inference_urls" "inference_model" "inference_adapter" -}}
{{- if hasKey $.Values.worker.settings $field -}}
{{- fail (printf "worker.settings.%s is set by the chart while inference.enabled: use inference.* instead" $field) -}}
{{- end -}}
{{- end -}}
{{- if hasKey .Values.worker.secretSettings "inference_api_key" -}}
{{- fail "worker.secretSettings.inference_api_key is set by the chart while inference.enabled: use inference.apiKey.existingSecret instead" -}}
{{- end -}}
{{- include "modfleet.validateInference" . -}}
{{- end -}}
{{- include "modfleet.validateWorkers" . -}}
{{- $otel := .Values.worker.settings.otel_enabled -}}
{{- if and $otel (ne (toString $otel) "false") -}}
{{- range $field := list "otel_exporter_otlp_endpoint" "otel_exporter_otlp_metrics_endpoint" -}}
{{- if not (hasKey $.Values.worker.settings $field) -}}
{{- fail (printf "worker.settings.otel_enabled: set worker.settings.%s too (the default is localhost, which has no collector in a pod)" $field) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $field := keys .Values.worker.settings -}}
{{- if hasKey $.Values.worker.secretSettings $field -}}
{{- fail (printf "%s is in both worker.settings and worker.secretSettings" $field) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.redis.existingSecret (not (or .Values.redis.urlKey .Values.redis.passwordKey)) -}}
{{- fail "redis.existingSecret is set: name the key of the URL (redis.urlKey) and/or the password (redis.passwordKey)" -}}
{{- end -}}
{{- if .Values.networkPolicy.enabled -}}
{{- include "modfleet.validateEgress" . -}}
{{- end -}}
{{- end -}}

{{/* Worker counts against partitions, and the consumer-group rename guard. */}}
{{- define "modfleet.validateWorkers" -}}
{{- $max := include "modfleet.workerMaxReplicas" . | int -}}
{{- $partitions := .Values.topics.postsPartitions | int -}}
{{- if gt $max $partitions -}}
{{- fail (printf "up to %d workers on %d partitions of %s: the workers past %d get no partition, never become ready and stall rollouts; lower the replica count or maxReplicas, or add partitions first (docs/runbook.md) and raise topics.postsPartitions" $max $partitions .Values.topics.posts $partitions) -}}
{{- end -}}
{{- $t := .Values.topicInit -}}
{{- if and $t.enabled $t.partitions (ne ($t.partitions | int) $partitions) -}}
{{- fail (printf "topicInit.partitions %d differs from topics.postsPartitions %d: topic-init would create %s with %d partitions while the chart sizes workers and rollouts for %d. Set topics.postsPartitions to the partitions the topic has (an existing topic keeps its own: then leave topicInit.partitions 0)" ($t.partitions | int) $partitions .Values.topics.posts ($t.partitions | int) $partitions) -}}
{{- end -}}
{{- $a := .Values.worker.autoscaling -}}
{{- range $name := list "keda" "hpa" -}}
{{- $s := get $a $name -}}
{{- if and $s.enabled (or (eq $name "keda") (not $a.keda.enabled)) (gt ($s.minReplicas | int) ($s.maxReplicas | int)) -}}
{{- fail (printf "worker.autoscaling.%s.minReplicas %d is above maxReplicas %d" $name ($s.minReplicas | int) ($s.maxReplicas | int)) -}}
{{- end -}}
{{- end -}}
{{- $pdb := .Values.worker.pdb -}}
{{- if and $pdb.enabled (has (toString $pdb.maxUnavailable) (list "0" "0%")) -}}
{{- fail (printf "worker.pdb.maxUnavailable %v lets no worker be evicted: node drains would hang. Use 1 or more, or set worker.pdb.enabled=false" $pdb.maxUnavailable) -}}
{{- end -}}
{{- /* 30: Settings.shutdown_grace_s's default (tests/helm checks that they agree). */ -}}
{{- $grace := 30 -}}
{{- $which := " (the default)" -}}
{{- if hasKey .Values.worker.settings "shutdown_grace_s" -}}
{{- $grace = .Values.worker.settings.shutdown_grace_s -}}
{{- $which = "" -}}
{{- end -}}
{{- if ge ($grace | float64) (.Values.worker.terminationGracePeriodSeconds | float64) -}}
{{- fail (printf "worker.settings.shutdown_grace_s %v%s is not below worker.terminationGracePeriodSeconds %v: the kubelet would kill a stopping worker before it finishes and acknowledges its batches. Raise the grace period (or lower shutdown_grace_s)" $grace $which .Values.worker.terminationGracePeriodSeconds) -}}
{{- end -}}
{{- $live := include "modfleet.liveConsumerGroup" . -}}
{{- if and $live (ne $live .Values.worker.consumerGroup) (not .Values.worker.consumerGroupChangeAllowed) -}}
{{- fail (printf "worker.consumerGroup changes from %q to %q: the new group has no committed offsets and would start at the earliest retained post, moderating them all again. Copy the offsets to the new group first (docs/runbook.md, renaming a consumer group), then upgrade with --set worker.consumerGroupChangeAllowed=true" $live .Values.worker.consumerGroup) -}}
{{- end -}}
{{- end -}}

{{/*
Ports the worker NetworkPolicy would drop: each port named in kafka.brokerUrl, redis.url,
worker.settings.inference_urls and the OTLP endpoints must be in some rule (NetworkPolicy drops
silently). Only ports are checked: whether a host lies within a rule's `to` peers cannot be known
here. Loopback hosts need no rule.
*/}}
{{- define "modfleet.validateEgress" -}}
{{- $np := .Values.networkPolicy -}}
{{- $kafkaPorts := list -}}
{{- range $np.kafka.ports }}{{ $kafkaPorts = append $kafkaPorts (int .) }}{{ end -}}
{{- range $e := include "modfleet.urlEndpoints" (dict "urls" .Values.kafka.brokerUrl "scheme" "kafka://") | fromYamlArray -}}
{{- if not (has (int $e.port) $kafkaPorts) -}}
{{- fail (printf "kafka.brokerUrl names port %d (%s), which networkPolicy.kafka.ports %v does not allow: add it there (the workers, topic-init and reviews reach the brokers on those ports)" (int $e.port) $e.host $kafkaPorts) -}}
{{- end -}}
{{- end -}}
{{- $checks := list -}}
{{- if not (and .Values.redis.existingSecret .Values.redis.urlKey) -}}
{{- $checks = append $checks (dict "what" "redis.url" "urls" .Values.redis.url "ports" $np.redis.ports "hint" "networkPolicy.redis.ports or ") -}}
{{- end -}}
{{- $settings := .Values.worker.settings -}}
{{- if hasKey $settings "inference_urls" -}}
{{- $checks = append $checks (dict "what" "worker.settings.inference_urls" "urls" (toString $settings.inference_urls) "ports" (list) "hint" "") -}}
{{- end -}}
{{- if and $settings.otel_enabled (ne (toString $settings.otel_enabled) "false") -}}
{{- range $field := list "otel_exporter_otlp_endpoint" "otel_exporter_otlp_metrics_endpoint" -}}
{{- $checks = append $checks (dict "what" (printf "worker.settings.%s" $field) "urls" (toString (get $settings $field)) "ports" (ternary $np.otelCollector.ports (list) $np.otelCollector.enabled) "hint" "networkPolicy.otelCollector.ports or ") -}}
{{- end -}}
{{- end -}}
{{- range $c := $checks -}}
{{- range $e := include "modfleet.urlEndpoints" (dict "urls" $c.urls "scheme" "") | fromYamlArray -}}
{{- $port := int $e.port -}}
{{- $allowed := false -}}
{{- range $c.ports }}{{ if eq (int .) $port }}{{ $allowed = true }}{{ end }}{{ end -}}
{{- range $rule := $np.extraEgress -}}
{{- if not $rule.ports }}{{ $allowed = true }}{{ end -}}
{{- range $rule.ports -}}
{{- if eq (default "TCP" .protocol) "TCP" -}}
{{- if or (not (hasKey . "port")) (kindIs "string" .port) -}}
{{- $allowed = true -}}
{{- else if and (ge $port (int .port)) (le $port (int (default .port .endPort))) -}}
{{- $allowed = true -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not (or $allowed (not $e.host) (eq $e.host "localhost" "::1") (hasPrefix "127." $e.host)) -}}
{{- fail (printf "%s names port %d (%s), which no egress rule of the worker NetworkPolicy allows: the workers could not reach it. Add it to %snetworkPolicy.extraEgress (with the peers), or set networkPolicy.enabled=false" $c.what $port $e.host $c.hint) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Host and port of each URL of a ';'-separated list, as a YAML list; the port defaults by scheme
(kafka 9092, redis/rediss 6379, http 80, https 443). (dict "urls" LIST "scheme" PREFIX): PREFIX is
put before URLs without a scheme (kafka:// for bootstrap servers). unix:// sockets are left out.
*/}}
{{- define "modfleet.urlEndpoints" -}}
{{- $defaults := dict "kafka" "9092" "redis" "6379" "rediss" "6379" "http" "80" "https" "443" -}}
{{- $out := list -}}
{{- range (splitList ";" .urls) -}}
{{- $u := trim . -}}
{{- if and $u (not (contains "://" $u)) }}{{ $u = printf "%s%s" $.scheme $u }}{{ end -}}
{{- if and $u (not (hasPrefix "unix:" $u)) -}}
{{- $parsed := urlParse $u -}}
{{- $port := regexFind ":[0-9]+$" $parsed.host | trimPrefix ":" -}}
{{- $host := regexReplaceAll ":[0-9]+$" $parsed.host "" | trimPrefix "[" | trimSuffix "]" -}}
{{- $port = default (get $defaults $parsed.scheme) $port -}}
{{- if $port }}{{ $out = append $out (dict "host" $host "port" (int $port)) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* GPU tier combinations that cannot work. */}}
{{- define "modfleet.validateInference" -}}
{{- $i := .Values.inference -}}
{{- $min := include "modfleet.inferenceMinReplicas" . | int -}}
{{- $c := $i.modelCache -}}
{{- $rwo := and (eq $c.type "pvc") (or (has "ReadWriteOnce" $c.accessModes) (has "ReadWriteOncePod" $c.accessModes)) -}}
{{- if and $rwo (or $i.autoscaling.enabled (gt ($i.replicaCount | int) 1)) -}}
{{- fail "inference.modelCache is a ReadWriteOnce volume, which one node only can attach: a second replica (replicaCount > 1 or autoscaling) would never start. Use accessModes [ReadWriteMany] or modelCache.type emptyDir" -}}
{{- end -}}
{{- if $i.autoscaling.enabled -}}
{{- if lt ($i.autoscaling.minReplicas | int) 1 -}}
{{- fail "inference.autoscaling.minReplicas 0: with no vLLM pod there are no vllm:* series, so the prometheus triggers never scale the GPU tier up again; use 1 or more (2 keeps one serving through drains)" -}}
{{- end -}}
{{- if gt ($i.autoscaling.minReplicas | int) ($i.autoscaling.maxReplicas | int) -}}
{{- fail (printf "inference.autoscaling.minReplicas %d is above maxReplicas %d" ($i.autoscaling.minReplicas | int) ($i.autoscaling.maxReplicas | int)) -}}
{{- end -}}
{{- if not (or .Values.serviceMonitor.enabled $i.autoscaling.seriesSelector) -}}
{{- fail "inference.autoscaling scales on vllm:* series that nothing scrapes: set serviceMonitor.enabled (Prometheus Operator), or inference.autoscaling.seriesSelector to match how your Prometheus labels vLLM's metrics" -}}
{{- end -}}
{{- if ge ($i.autoscaling.runningThreshold | float64) ($i.maxNumSeqs | float64) -}}
{{- fail (printf "inference.autoscaling.runningThreshold %v can never be reached: a replica runs at most inference.maxNumSeqs %v sequences; set it below" $i.autoscaling.runningThreshold $i.maxNumSeqs) -}}
{{- end -}}
{{- end -}}
{{- if and $i.pdb.enabled (le $min ($i.pdb.minAvailable | int)) -}}
{{- fail (printf "inference.pdb.minAvailable %d with %d replica(s) leaves none to evict: node drains would hang. Run more replicas (replicaCount or autoscaling.minReplicas) or set inference.pdb.enabled=false" ($i.pdb.minAvailable | int) $min) -}}
{{- end -}}
{{- if and (eq (toString $i.rollout.maxSurge) "0") (eq (toString $i.rollout.maxUnavailable) "0") -}}
{{- fail "inference.rollout: maxSurge and maxUnavailable cannot both be 0" -}}
{{- end -}}
{{- if and (not $rwo) (not (kindIs "string" $i.rollout.maxUnavailable)) (ge ($i.rollout.maxUnavailable | int) $min) -}}
{{- fail (printf "inference.rollout.maxUnavailable %d takes all %d replica(s) down at once; keep it below the replica count" ($i.rollout.maxUnavailable | int) $min) -}}
{{- end -}}
{{- if and $i.service.headless (ne $i.service.type "ClusterIP") -}}
{{- fail (printf "inference.service.headless needs type ClusterIP, not %s" $i.service.type) -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled .Values.networkPolicy.enabled (not .Values.networkPolicy.metricsFrom) -}}
{{- fail "serviceMonitor.enabled with the GPU tier: vLLM serves its API and /metrics on one port, so networkPolicy.metricsFrom must name your Prometheus (e.g. a namespaceSelector) instead of admitting every pod" -}}
{{- end -}}
{{- end -}}

{{/* Kafka and topic settings (MODFLEET_*), shared by the worker and the topic-init Job. */}}
{{- define "modfleet.kafkaEnv" -}}
- name: MODFLEET_BROKER_URL
  value: {{ .Values.kafka.brokerUrl | quote }}
- name: MODFLEET_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if eq (include "modfleet.kafkaSasl" .) "true" }}
- name: MODFLEET_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: MODFLEET_KAFKA_SASL_USERNAME
  value: {{ .Values.kafka.sasl.username | quote }}
- name: MODFLEET_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret | quote }}
      key: {{ .Values.kafka.sasl.passwordKey | quote }}
{{- end }}
{{- if and (eq (include "modfleet.kafkaTls" .) "true") .Values.kafka.tls.existingSecret }}
{{- if .Values.kafka.tls.caKey }}
- name: MODFLEET_KAFKA_SSL_CAFILE
  value: {{ printf "%s/%s" (include "modfleet.kafkaTlsMountPath" .) .Values.kafka.tls.caKey | quote }}
{{- end }}
{{- if .Values.kafka.tls.certKey }}
- name: MODFLEET_KAFKA_SSL_CERTFILE
  value: {{ printf "%s/%s" (include "modfleet.kafkaTlsMountPath" .) .Values.kafka.tls.certKey | quote }}
{{- end }}
{{- if .Values.kafka.tls.keyKey }}
- name: MODFLEET_KAFKA_SSL_KEYFILE
  value: {{ printf "%s/%s" (include "modfleet.kafkaTlsMountPath" .) .Values.kafka.tls.keyKey | quote }}
{{- end }}
{{- end }}
- name: MODFLEET_CONSUMER_GROUP
  value: {{ .Values.worker.consumerGroup | quote }}
- name: MODFLEET_BROKER_SESSION_TIMEOUT_S
  value: {{ .Values.kafka.sessionTimeoutS | include "modfleet.scalar" | quote }}
- name: MODFLEET_BROKER_HEARTBEAT_INTERVAL_S
  value: {{ .Values.kafka.heartbeatIntervalS | include "modfleet.scalar" | quote }}
- name: MODFLEET_POSTS_TOPIC
  value: {{ .Values.topics.posts | quote }}
- name: MODFLEET_DECISIONS_TOPIC
  value: {{ .Values.topics.decisions | quote }}
- name: MODFLEET_ESCALATIONS_TOPIC
  value: {{ .Values.topics.escalations | quote }}
- name: MODFLEET_DEAD_LETTER_TOPIC
  value: {{ .Values.topics.deadLetter | quote }}
- name: MODFLEET_REVIEWS_TOPIC
  value: {{ .Values.topics.reviews | quote }}
- name: MODFLEET_LOG_LEVEL
  value: {{ .Values.worker.logLevel | quote }}
{{- end -}}

{{/* Kafka TLS volume and mount (only with an SSL protocol and a Secret). */}}
{{- define "modfleet.kafkaTlsVolume" -}}
{{- if and (eq (include "modfleet.kafkaTls" .) "true") .Values.kafka.tls.existingSecret -}}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret | quote }}
    defaultMode: 0440
{{- end }}
{{- end -}}
{{- define "modfleet.kafkaTlsMount" -}}
{{- if and (eq (include "modfleet.kafkaTls" .) "true") .Values.kafka.tls.existingSecret -}}
- name: kafka-tls
  mountPath: {{ include "modfleet.kafkaTlsMountPath" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* The worker's environment: Kafka, Redis, batching, model, policy, web (all MODFLEET_*). */}}
{{- define "modfleet.workerEnv" -}}
{{ include "modfleet.kafkaEnv" . }}
{{- if and .Values.redis.existingSecret .Values.redis.urlKey }}
- name: MODFLEET_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret | quote }}
      key: {{ .Values.redis.urlKey | quote }}
{{- else }}
- name: MODFLEET_REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- end }}
{{- if and .Values.redis.existingSecret .Values.redis.passwordKey }}
- name: MODFLEET_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret | quote }}
      key: {{ .Values.redis.passwordKey | quote }}
{{- else if and .Values.redis.auth (not .Values.redis.existingSecret) }}
- name: MODFLEET_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "modfleet.credentialsName" . | quote }}
      key: redis-password
{{- end }}
- name: MODFLEET_CACHE_HMAC_KEY
  valueFrom:
    {{- include "modfleet.secretRef" (dict "ctx" . "secret" .Values.redis.cacheHmacKey.existingSecret "key" .Values.redis.cacheHmacKey.key "generatedKey" "cache-hmac-key") | nindent 4 }}
{{- if .Values.redis.tls.existingSecret }}
- name: MODFLEET_REDIS_SSL_CA_CERTS
  value: {{ printf "%s/%s" (include "modfleet.redisTlsMountPath" .) .Values.redis.tls.caKey | quote }}
{{- end }}
- name: MODFLEET_REDIS_TIMEOUT_S
  value: {{ .Values.redis.timeoutS | include "modfleet.scalar" | quote }}
- name: MODFLEET_CACHE_ENABLED
  value: {{ .Values.redis.cacheEnabled | include "modfleet.scalar" | quote }}
- name: MODFLEET_CACHE_TTL_S
  value: {{ .Values.redis.cacheTtlS | int64 | toString | quote }}
- name: MODFLEET_BATCH_MAX
  value: {{ .Values.worker.batchMax | int64 | toString | quote }}
- name: MODFLEET_BATCH_WITHIN_S
  value: {{ .Values.worker.batchWithinS | include "modfleet.scalar" | quote }}
- name: MODFLEET_CLASSIFY_ATTEMPTS
  value: {{ .Values.worker.classifyAttempts | int64 | toString | quote }}
- name: MODFLEET_RETRY_BACKOFF_S
  value: {{ .Values.worker.retryBackoffS | include "modfleet.scalar" | quote }}
- name: MODFLEET_EMIT_ATTEMPTS
  value: {{ .Values.worker.emitAttempts | int64 | toString | quote }}
{{- if .Values.worker.crashJournal }}
{{- /* In the /tmp emptyDir: it outlives the container, so the restart after a death finds it. */}}
- name: MODFLEET_CRASH_JOURNAL_PATH
  value: "/tmp/modfleet-crash-journal.json"
{{- end }}
{{- if .Values.inference.enabled }}
{{- /* Settings fields of the LLM inference tier (GPU inference issue). */}}
- name: MODFLEET_CLASSIFIER_BACKEND
  value: {{ .Values.inference.workerBackend | quote }}
- name: MODFLEET_INFERENCE_URLS
  {{- /* A headless Service has no port mapping: its DNS name leads to the pods themselves. */}}
  value: {{ printf "http://%s:%d/v1" (include "modfleet.inferenceName" .) (ternary .Values.inference.port .Values.inference.service.port .Values.inference.service.headless | int) | quote }}
- name: MODFLEET_INFERENCE_MODEL
  value: {{ default .Values.inference.model.name .Values.inference.model.servedName | quote }}
- name: MODFLEET_INFERENCE_ADAPTER
  value: {{ .Values.inference.adapter | quote }}
- name: MODFLEET_INFERENCE_API_KEY
  valueFrom:
    {{- include "modfleet.secretRef" (dict "ctx" . "secret" .Values.inference.apiKey.existingSecret "key" .Values.inference.apiKey.key "generatedKey" "inference-api-key") | nindent 4 }}
{{- else if .Values.worker.classifierBackend }}
- name: MODFLEET_CLASSIFIER_BACKEND
  value: {{ .Values.worker.classifierBackend | quote }}
{{- end }}
{{- if .Values.worker.classifierPlugin }}
- name: MODFLEET_CLASSIFIER_PLUGIN
  value: {{ .Values.worker.classifierPlugin | quote }}
{{- end }}
- name: MODFLEET_POLICY_PATH
  {{- if .Values.policies.loadFolder }}
  {{- /* A folder of packs: every *.yaml of the ConfigMap (per tenant, live and shadow). */}}
  value: {{ .Values.policies.mountPath | quote }}
  {{- else }}
  value: {{ printf "%s/%s" .Values.policies.mountPath .Values.policies.active | quote }}
  {{- end }}
{{- /* 0.0.0.0 only for the kubelet's probes and Prometheus; the NetworkPolicy narrows it. */}}
- name: MODFLEET_WEB_HOST
  value: "0.0.0.0"
- name: MODFLEET_WEB_PORT
  value: {{ .Values.worker.webPort | int64 | toString | quote }}
{{- range $field, $value := .Values.worker.settings }}
- name: {{ printf "MODFLEET_%s" (upper $field) }}
  value: {{ include "modfleet.scalar" $value | quote }}
{{- end }}
{{- range $field, $ref := .Values.worker.secretSettings }}
- name: {{ printf "MODFLEET_%s" (upper $field) }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secretName | quote }}
      key: {{ $ref.key | quote }}
{{- end }}
{{- with .Values.worker.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod-level pull secrets. */}}
{{- define "modfleet.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress rule from {to: [peers], ports: [numbers]}; no peers: any destination. */}}
{{- define "modfleet.egressRule" -}}
- ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* NetworkPolicy egress rule for the cluster DNS (UDP and TCP). */}}
{{- define "modfleet.egressDns" -}}
- ports:
    - port: {{ .Values.networkPolicy.dns.port }}
      protocol: UDP
    - port: {{ .Values.networkPolicy.dns.port }}
      protocol: TCP
  {{- with .Values.networkPolicy.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
