package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PipelineSpec watches a repository; every new commit on a watched branch
// becomes a Build that runs the repository's own steps file.
type PipelineSpec struct {
	// Repo is the git URL to watch (https://, ssh:// or file://).
	// +kubebuilder:validation:MinLength=1
	Repo string `json:"repo"`
	// Branches are the branch names or globs ("release/*") that trigger builds.
	// +kubebuilder:default={"main"}
	// +optional
	Branches []string `json:"branches,omitempty"`
	// SecretRef names the clone credentials, with the same keys as a Sync's.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// File is the steps file's path in the repository.
	// +kubebuilder:default=".homeostat-ci.yaml"
	// +optional
	File string `json:"file,omitempty"`
	// Interval between polls of the repository; a webhook triggers at once.
	// +kubebuilder:default="1m"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Concurrency caps the builds of this pipeline running at once.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +optional
	Concurrency int32 `json:"concurrency,omitempty"`
	// History is how many finished builds are kept.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +optional
	History int32 `json:"history,omitempty"`
	// Suspend stops triggering new builds.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// Notify says who hears about finished builds.
	// +optional
	Notify *Notify `json:"notify,omitempty"`
	// Logs keeps every build's log in an object store, so it outlives the
	// build's pod; without it the log lives only as long as the pod.
	// +optional
	Logs *PipelineLogs `json:"logs,omitempty"`
	// Secrets are the only Secrets a steps file may name in secretEnv, each
	// on the branches listed. The authority is here, in the reviewed
	// Pipeline, not in the steps file that anyone with push access edits.
	// +optional
	// +listType=map
	// +listMapKey=name
	Secrets []PipelineSecret `json:"secrets,omitempty"`
}

// PipelineLogs says where build logs are kept.
type PipelineLogs struct {
	// S3 is the store, the same shape as a Postgres backup's; the logs go
	// under PATH/NAMESPACE/BUILD/.
	S3 S3Store `json:"s3"`
}

// PipelineSecret allows builds of some branches to use a Secret.
type PipelineSecret struct {
	// Name of a Secret in the pipeline's namespace.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Branches whose builds may use it: names or globs ("release/*").
	// +kubebuilder:validation:MinItems=1
	Branches []string `json:"branches"`
}

// Notify lists where build results are sent.
type Notify struct {
	// Webhook posts a chat message or JSON document.
	// +optional
	Webhook *WebhookNotify `json:"webhook,omitempty"`
	// CommitStatus sets a status on the commit in GitHub or Gitea.
	// +optional
	CommitStatus *CommitStatusNotify `json:"commitStatus,omitempty"`
}

// WebhookNotify is a chat or JSON webhook whose URL is a secret.
type WebhookNotify struct {
	// SecretRef names a Secret with the key "url" (and, for Telegram, "chatID").
	SecretRef LocalObjectReference `json:"secretRef"`
	// Format is slack (Slack, Mattermost, Rocket.Chat), telegram or json.
	// +kubebuilder:validation:Enum=slack;telegram;json
	// +kubebuilder:default=slack
	// +optional
	Format string `json:"format,omitempty"`
}

// CommitStatusNotify reports build results as commit statuses.
type CommitStatusNotify struct {
	// Provider is github or gitea.
	// +kubebuilder:validation:Enum=github;gitea
	Provider string `json:"provider"`
	// URL is the API base, for example https://api.github.com or https://gitea.example.com.
	// +optional
	URL string `json:"url,omitempty"`
	// SecretRef names a Secret with the key "token".
	SecretRef LocalObjectReference `json:"secretRef"`
}

// BranchHead is the newest commit seen on a branch.
type BranchHead struct {
	// Branch name.
	Branch string `json:"branch"`
	// Commit hash.
	Commit string `json:"commit"`
}

// PipelineStatus is what the pipeline controller last saw.
type PipelineStatus struct {
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Heads are the commits that already have builds, per branch.
	// +optional
	Heads []BranchHead `json:"heads,omitempty"`
	// LastBuild is the name of the newest Build.
	// +optional
	LastBuild string `json:"lastBuild,omitempty"`
	// LastPolled is when the repository was last asked for its branches.
	// +optional
	LastPolled *metav1.Time `json:"lastPolled,omitempty"`
}

// Pipeline is a watched repository and its CI steps file.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=homeostat
// +kubebuilder:printcolumn:name="Repo",type=string,JSONPath=`.spec.repo`
// +kubebuilder:printcolumn:name="Last Build",type=string,JSONPath=`.status.lastBuild`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Pipeline struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PipelineSpec   `json:"spec"`
	Status PipelineStatus `json:"status,omitempty"`
}

// PipelineList is a list of Pipelines.
//
// +kubebuilder:object:root=true
type PipelineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Pipeline `json:"items"`
}

// BuildSpec is one CI run of a pipeline on one commit.
type BuildSpec struct {
	// Pipeline that triggered the build.
	Pipeline LocalObjectReference `json:"pipeline"`
	// Repo is the git URL, copied from the pipeline when the build was made.
	Repo string `json:"repo"`
	// Branch the commit was seen on.
	// +optional
	Branch string `json:"branch,omitempty"`
	// Commit is the full hash to build.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{40}$`
	Commit string `json:"commit"`
	// Resume, when set to true, releases a step paused with `pause: true`.
	// +optional
	Resume bool `json:"resume,omitempty"`
}

// Build phases.
const (
	BuildPending   = "Pending"
	BuildRunning   = "Running"
	BuildPaused    = "Paused"
	BuildSucceeded = "Succeeded"
	BuildFailed    = "Failed"
)

// StepStatus is the result of one step.
type StepStatus struct {
	// Name of the step.
	Name string `json:"name"`
	// Phase is Running, Paused, Succeeded, Failed or Skipped.
	Phase string `json:"phase"`
	// ExitCode of the step's command.
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// Duration the step took, for example "12.5s".
	// +optional
	Duration string `json:"duration,omitempty"`
}

// BuildStatus is how the build went.
type BuildStatus struct {
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Phase is Pending, Running, Paused, Succeeded or Failed.
	// +optional
	Phase string `json:"phase,omitempty"`
	// Pod running the build.
	// +optional
	Pod string `json:"pod,omitempty"`
	// StartedAt is when the build's pod started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// CompletedAt is when the build finished.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// Duration of the whole build, for example "1m12s".
	// +optional
	Duration string `json:"duration,omitempty"`
	// Steps in the order they ran.
	// +optional
	Steps []StepStatus `json:"steps,omitempty"`
	// FailedStep is the step that failed the build.
	// +optional
	FailedStep string `json:"failedStep,omitempty"`
	// Message explains a failure: a bad steps file (with file and line), a
	// timeout, a clone error.
	// +optional
	Message string `json:"message,omitempty"`
	// LogURL is where the build's log is kept once its pod is gone
	// (s3://BUCKET/KEY), set when the pipeline has spec.logs.
	// +optional
	LogURL string `json:"logURL,omitempty"`
	// Notified is true once the result has been sent.
	// +optional
	Notified bool `json:"notified,omitempty"`
}

// Build is one CI run.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=homeostat
// +kubebuilder:printcolumn:name="Pipeline",type=string,JSONPath=`.spec.pipeline.name`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.spec.commit`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Duration",type=string,JSONPath=`.status.duration`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Build struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BuildSpec   `json:"spec"`
	Status BuildStatus `json:"status,omitempty"`
}

// BuildList is a list of Builds.
//
// +kubebuilder:object:root=true
type BuildList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Build `json:"items"`
}
