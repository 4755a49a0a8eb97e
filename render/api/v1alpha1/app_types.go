package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AppSpec is a Heroku-style description of a stateless web application. It
// renders to a Deployment, a Service, an Ingress (when domains are given) and a
// HorizontalPodAutoscaler (when autoscale is set), all named after the App.
type AppSpec struct {
	// Image is the container image reference, for example
	// "registry.example.com/acme/shop:1.4.2".
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image"`

	// Command replaces the image's entrypoint.
	// +optional
	Command []string `json:"command,omitempty"`

	// Args replaces the image's default arguments.
	// +optional
	Args []string `json:"args,omitempty"`

	// Port is the port the container listens on. The Service listens on 80 and
	// forwards to it.
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// Replicas is the number of pods when autoscale is not set.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Env holds plain environment variables.
	// +optional
	Env map[string]string `json:"env,omitempty"`

	// SecretEnv holds environment variables read from Secret keys.
	// +optional
	SecretEnv map[string]SecretKeySelector `json:"secretEnv,omitempty"`

	// Domains are the host names the App is served on; an Ingress is rendered
	// only when at least one is given.
	// +optional
	Domains []string `json:"domains,omitempty"`

	// TLS turns on HTTPS for the domains.
	// +optional
	TLS *AppTLS `json:"tls,omitempty"`

	// IngressClassName selects the ingress controller.
	// +optional
	IngressClassName *string `json:"ingressClassName,omitempty"`

	// HealthCheck sets readiness and liveness probes (HTTP GET on the port).
	// +optional
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`

	// Resources is what each pod asks for.
	// +optional
	Resources *Resources `json:"resources,omitempty"`

	// Postgres injects DATABASE_URL from the app secret of the named Postgres
	// in the same namespace.
	// +optional
	Postgres *AppPostgres `json:"postgres,omitempty"`

	// Autoscale renders a HorizontalPodAutoscaler instead of a fixed replica count.
	// +optional
	Autoscale *Autoscale `json:"autoscale,omitempty"`
}

// AppTLS is either an existing certificate Secret or a cert-manager issuer
// that creates one; exactly one of the two is set.
// +kubebuilder:validation:XValidation:rule="has(self.secretName) != has(self.issuer)",message="set exactly one of secretName and issuer"
type AppTLS struct {
	// SecretName is an existing kubernetes.io/tls Secret for the domains.
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// Issuer is a cert-manager ClusterIssuer; the certificate is stored in
	// the Secret "<app>-tls".
	// +optional
	Issuer string `json:"issuer,omitempty"`
}

// HealthCheck is an HTTP endpoint that answers 2xx or 3xx when the App is healthy.
type HealthCheck struct {
	// Path of the health endpoint, for example "/healthz".
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path"`
	// InitialDelaySeconds before the first liveness probe.
	// +kubebuilder:validation:Minimum=0
	// +optional
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	// PeriodSeconds between probes; 10 when unset.
	// +kubebuilder:validation:Minimum=0
	// +optional
	PeriodSeconds int32 `json:"periodSeconds,omitempty"`
}

// AppPostgres names the Postgres whose app credentials the App receives.
type AppPostgres struct {
	// Name of the Postgres in the App's namespace.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Env is the variable that carries the connection URI.
	// +kubebuilder:default=DATABASE_URL
	// +optional
	Env string `json:"env,omitempty"`
}

// Autoscale bounds a HorizontalPodAutoscaler on CPU utilisation.
// +kubebuilder:validation:XValidation:rule="self.min <= self.max",message="min must not exceed max"
type Autoscale struct {
	// Min replicas.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=1
	// +optional
	Min int32 `json:"min,omitempty"`
	// Max replicas.
	// +kubebuilder:validation:Minimum=1
	Max int32 `json:"max"`
	// CPUPercent is the target average CPU utilisation.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=80
	// +optional
	CPUPercent int32 `json:"cpuPercent,omitempty"`
}

// AppStatus is what homeostat observed of an App's children.
type AppStatus struct {
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// URL the App is reachable on: https://first-domain when domains are set,
	// else the in-cluster Service URL.
	// +optional
	URL string `json:"url,omitempty"`
	// ReadyReplicas of the App's Deployment.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
}

// App is a stateless web application.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=app,categories=homeostat
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.image`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type App struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AppSpec   `json:"spec"`
	Status AppStatus `json:"status,omitempty"`
}

// AppList is a list of Apps.
//
// +kubebuilder:object:root=true
type AppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []App `json:"items"`
}
