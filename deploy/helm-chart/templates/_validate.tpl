{{/*
helm-ai-kernel.validateValues: every render guard in one place. It collects each problem with
its fix and fails once, so an operator sees the whole list instead of fixing one at a time.
Production never generates key material: it needs a signing seed and both API keys, from values
or (preferred) existing Secrets.
Usage: {{ include "helm-ai-kernel.validateValues" . }}
*/}}
{{- define "helm-ai-kernel.validateValues" -}}
{{- $v := .Values -}}
{{- $h := $v.helm -}}
{{- $prod := $h.production -}}
{{- $src := $h.policy.source -}}
{{- $sig := $h.policy.signature -}}
{{- $pg := $h.storage.postgres -}}
{{- $msgs := list -}}

{{- /* Upstream values this chart does not implement (values.schema.json marks each with
x-unsupported): refused by name, so asking for e.g. the emergency-stop fence never silently
gets none. */ -}}
{{- $unsupported := dict "telemetry" "OTLP telemetry" "openrouter" "the launchpad apps' OpenRouter key" "launchpadApps" "launchpad apps" -}}
{{- $unsupportedHelm := dict "githubEffects" "GitHub effects" "emergencyStop" "the emergency-stop fence" -}}
{{- range $key, $feature := $unsupported -}}
{{- if hasKey $v $key -}}
{{- $msgs = append $msgs (include "helm-ai-kernel.unsupportedValue" (list $key (index $v $key) $feature)) -}}
{{- end -}}
{{- end -}}
{{- range $key, $feature := $unsupportedHelm -}}
{{- if hasKey $h $key -}}
{{- $msgs = append $msgs (include "helm-ai-kernel.unsupportedValue" (list (printf "helm.%s" $key) (index $h $key) $feature)) -}}
{{- end -}}
{{- end -}}
{{- if ne (toString $h.signing.algorithm) "ed25519" -}}
{{- $msgs = append $msgs (printf "helm.signing.algorithm=%s (ML-DSA / hybrid receipts) is not supported by this chart: leave it at ed25519, or use the upstream helm-ai-kernel chart for that feature." (toString $h.signing.algorithm)) -}}
{{- end -}}

{{- if not (has $src.kind (list "controlplane" "crd" "mountedFile")) -}}
{{- $msgs = append $msgs (printf "helm.policy.source.kind=%q must be one of controlplane, crd, mountedFile." $src.kind) -}}
{{- end -}}

{{- if and $h.signing.key (not (regexMatch "^[0-9a-fA-F]{64}$" (toString $h.signing.key))) -}}
{{- $msgs = append $msgs "helm.signing.key must be a 64-character hex Ed25519 seed. Generate one with `openssl rand -hex 32`, or use helm.signing.existingSecret." -}}
{{- end -}}
{{- if and $sig.publicKey (not (regexMatch "^[0-9a-fA-F]{64}$" (toString $sig.publicKey))) -}}
{{- $msgs = append $msgs "helm.policy.signature.publicKey must be a 64-character hex Ed25519 public key (`helm-runbook policy keygen` prints one)." -}}
{{- end -}}
{{- if and $sig.required (not (or $sig.publicKey $sig.existingSecret)) -}}
{{- $msgs = append $msgs "helm.policy.signature.required=true requires helm.policy.signature.publicKey or helm.policy.signature.existingSecret (holding HELM_POLICY_TRUST_PUBLIC_KEY)." -}}
{{- end -}}
{{- /* Checked here, not by the schema: Helm's schema refusals name JSON pointers
(/runtimeInit/image), and operators (and upstream's chart CI) search for the dotted name. */ -}}
{{- if not (regexMatch "^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$" (toString $v.runtimeInit.image)) -}}
{{- $msgs = append $msgs (printf "runtimeInit.image %q must be pinned by immutable sha256 digest (registry/image@sha256:<64 hex>)." (toString $v.runtimeInit.image)) -}}
{{- end -}}
{{- $scope := dict "tenantID" "HELM_RUNTIME_TENANT_ID, sent by clients as X-Helm-Tenant-ID; the chart default is \"default\"" "principalID" "HELM_RUNTIME_PRINCIPAL_ID, sent by clients as X-Helm-Principal-ID; the chart default is \"system-admin\"" "workspaceID" "HELM_RUNTIME_WORKSPACE_ID; the chart default is \"default\"" -}}
{{- range $key := list "tenantID" "principalID" "workspaceID" -}}
{{- if not (index $h.auth $key) -}}
{{- $msgs = append $msgs (printf "helm.auth.%s: must not be empty: the runtime binds tenant-scoped routes to it (%s)." $key (index $scope $key)) -}}
{{- end -}}
{{- end -}}
{{- if or (not $v.podSecurityContext.runAsUser) (not $v.podSecurityContext.runAsGroup) -}}
{{- $msgs = append $msgs "podSecurityContext.runAsUser and podSecurityContext.runAsGroup are required: the authority-state init container runs as that non-root user." -}}
{{- end -}}
{{- if and (gt (int $v.replicaCount) 1) (ne $h.storage.type "postgres") -}}
{{- $msgs = append $msgs (printf "replicaCount=%d requires helm.storage.type=postgres: SQLite on a ReadWriteOnce volume is single-pod. Set replicaCount=1 or use PostgreSQL (helm.storage.postgres.existingSecret)." (int $v.replicaCount)) -}}
{{- end -}}
{{- if and (gt (int $v.replicaCount) 1) (eq $h.storage.type "postgres") (eq (include "helm-ai-kernel.singleWriterData" .) "true") -}}
{{- $msgs = append $msgs (printf "replicaCount=%d with persistence.enabled=true and accessModes %s would mount one single-writer claim in every pod. Set persistence.enabled=false (receipts live in PostgreSQL; root.key is copied from the signing Secret at each start), or persistence.accessModes={ReadWriteMany} on a storage class that supports it, or replicaCount=1." (int $v.replicaCount) (join "," $v.persistence.accessModes)) -}}
{{- end -}}
{{- if and (eq $h.storage.type "postgres") (not $pg.existingSecret) (not $pg.host) (not $prod) -}}
{{- $msgs = append $msgs "helm.storage.type=postgres requires helm.storage.postgres.existingSecret (a Secret with DATABASE_URL) or helm.storage.postgres.host: without either the runtime would get postgres://helm:@:5432/helm." -}}
{{- end -}}
{{- if gt (int $h.guardian.semanticThreatEscalationBP) 10000 -}}
{{- $msgs = append $msgs "helm.guardian.semanticThreatEscalationBP must be between 0 and 10000 basis points." -}}
{{- end -}}
{{- if not (has $h.policy.failClosed.onInvalidUpdate (list "keepLastKnownGood" "deny")) -}}
{{- $msgs = append $msgs (printf "helm.policy.failClosed.onInvalidUpdate=%q must be keepLastKnownGood or deny (an invalid update never widens what is allowed)." $h.policy.failClosed.onInvalidUpdate) -}}
{{- end -}}
{{- if and $h.metrics.serviceMonitor.enabled (not $h.metrics.enabled) -}}
{{- $msgs = append $msgs "helm.metrics.serviceMonitor.enabled=true requires helm.metrics.enabled=true (the ServiceMonitor scrapes the metrics port)." -}}
{{- end -}}

{{- if $prod -}}
{{- /* No lookup of an in-cluster Secret here: helm template (no cluster) and helm install must
refuse the same values. */ -}}
{{- if not (or $h.signing.key $h.signing.existingSecret) -}}
{{- $msgs = append $msgs "helm.production=true requires helm.signing.key (64 hex) or helm.signing.existingSecret (a Secret with key signing-key); production never generates key material." -}}
{{- end -}}
{{- if not (or $h.auth.adminAPIKey $h.auth.existingSecret) -}}
{{- $msgs = append $msgs "helm.production=true requires helm.auth.adminAPIKey or helm.auth.existingSecret: protected APIs fail closed without admin auth." -}}
{{- end -}}
{{- if not (or $h.auth.serviceAPIKey $h.auth.existingSecret) -}}
{{- $msgs = append $msgs "helm.production=true requires helm.auth.serviceAPIKey or helm.auth.existingSecret: /internal routes (the policy wake hint) fail closed without it." -}}
{{- end -}}
{{- if eq $src.kind "controlplane" -}}
{{- if not $src.controlplane.url -}}
{{- $msgs = append $msgs "helm.production=true with helm.policy.source.kind=controlplane requires helm.policy.source.controlplane.url." -}}
{{- end -}}
{{- if and (eq $src.controlplane.auth.mode "bearerToken") (not (or $src.controlplane.auth.bearerToken $src.controlplane.auth.existingSecret)) -}}
{{- $msgs = append $msgs "helm.policy.source.controlplane.auth.mode=bearerToken requires helm.policy.source.controlplane.auth.bearerToken or .existingSecret." -}}
{{- end -}}
{{- if not $sig.required -}}
{{- $msgs = append $msgs "helm.production=true with helm.policy.source.kind=controlplane requires helm.policy.signature.required=true." -}}
{{- end -}}
{{- end -}}
{{- if not $h.policy.agentSafety.baseline.enabled -}}
{{- $msgs = append $msgs "helm.production=true requires helm.policy.agentSafety.baseline.enabled=true." -}}
{{- end -}}
{{- $guards := list "denyUnknownTools" "denyUnknownEgress" "requireManifestValidation" "requireOutputContractValidation" "requireApprovedArgBinding" "lksMemoryInfluenceOnly" "requireA2ASignatures" "enforceSafeDepGates" "enforceBudgetCircuitBreakers" "failClosedOnMissingContext" -}}
{{- $off := list -}}
{{- range $guards -}}{{- if not (index $h.policy.agentSafety .) -}}{{- $off = append $off . -}}{{- end -}}{{- end -}}
{{- if $off -}}
{{- $msgs = append $msgs (printf "helm.production=true requires all agentSafety fail-closed guards enabled; set helm.policy.agentSafety.{%s}=true." (join "," $off)) -}}
{{- end -}}
{{- if eq $h.storage.type "postgres" -}}
{{- if not $pg.existingSecret -}}
{{- $msgs = append $msgs "helm.production=true with helm.storage.type=postgres requires helm.storage.postgres.existingSecret (a Secret with DATABASE_URL); inline database credentials are not rendered." -}}
{{- end -}}
{{- if $v.postgresql.enabled -}}
{{- $msgs = append $msgs "helm.production=true does not support the bundled postgresql subchart (postgresql.enabled=true); give an external TLS DATABASE_URL in helm.storage.postgres.existingSecret." -}}
{{- end -}}
{{- if not (has $pg.sslMode (list "require" "verify-ca" "verify-full")) -}}
{{- $msgs = append $msgs (printf "helm.production=true with postgres requires helm.storage.postgres.sslMode require, verify-ca or verify-full (got %q)." $pg.sslMode) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- if $msgs -}}
{{- fail (printf "\n\nhelm-ai-kernel: values need attention:\n  - %s" (join "\n  - " $msgs)) -}}
{{- end -}}
{{- end -}}


{{/*
helm-ai-kernel.unsupportedValue: the refusal for an upstream value this chart does not implement,
naming every leaf the operator set (dotted, as written with --set), at most five of them.
Usage: {{ include "helm-ai-kernel.unsupportedValue" (list "helm.emergencyStop" $value "the emergency-stop fence") }}
*/}}
{{- define "helm-ai-kernel.unsupportedValue" -}}
{{- $key := index . 0 -}}
{{- $leaves := splitList "\n" (trim (include "helm-ai-kernel.leafPaths" (list $key (index . 1)))) -}}
{{- $shown := join ", " (slice $leaves 0 (min 5 (len $leaves))) -}}
{{- if gt (len $leaves) 5 -}}{{- $shown = printf "%s and %d more" $shown (sub (len $leaves) 5) -}}{{- end -}}
{{- printf "%s: this chart does not support %s (an upstream helm-ai-kernel chart value). Leave %s unset, or use the upstream chart for that feature." $shown (index . 2) $key -}}
{{- end -}}

{{/*
helm-ai-kernel.leafPaths: the dotted path of every leaf under a value, one per line, sorted.
Usage: {{ include "helm-ai-kernel.leafPaths" (list "launchpadApps" .Values.launchpadApps) }}
*/}}
{{- define "helm-ai-kernel.leafPaths" -}}
{{- $prefix := index . 0 -}}
{{- $value := index . 1 -}}
{{- if and (kindIs "map" $value) $value -}}
{{- range $k, $item := $value -}}
{{- include "helm-ai-kernel.leafPaths" (list (printf "%s.%s" $prefix $k) $item) -}}
{{- end -}}
{{- else -}}
{{- printf "%s\n" $prefix -}}
{{- end -}}
{{- end -}}
