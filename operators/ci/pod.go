package ci

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/operators/ci/steps"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Paths inside a build pod.
const (
	binDir        = "/homeostat"
	installDir    = "/homeostat-bin"
	workspaceDir  = "/workspace"
	podInfoDir    = "/etc/homeostat/podinfo"
	gitSecretDir  = "/etc/homeostat/git"
	agentBinary   = binDir + "/homeostat"
	resumeFile    = podInfoDir + "/resume"
	resultFile    = "/dev/termination-log"
	pausedFile    = binDir + "/paused"
	agentName     = "agent"
	imageBinary   = "/homeostat"
	extraDeadline = 600 // seconds for pulling images and cloning, on top of the steps' timeout
)

// PodOptions are the operator-wide settings of build pods.
type PodOptions struct {
	// Image is the homeostat image, whose /homeostat binary is copied into
	// the pod (from $HOMEOSTAT_IMAGE in the controller).
	Image string
}

// BuildPod is the pod that runs build b of pipeline p with steps file f.
//
//   - init "install" (homeostat image) copies the homeostat binary into a
//     shared volume, so the steps image needs nothing of ours;
//   - init "clone" runs that binary in the steps image, `homeostat git clone`
//     of the commit into the workspace volume: running as the steps image's
//     user, the workspace belongs to the user the steps run as;
//   - services are native sidecars (init containers with restartPolicy
//     Always): they start before the steps, share localhost, and are
//     stopped when the agent ends, so the pod completes;
//   - "agent" runs `homeostat ci agent`, which writes its result as the
//     termination message; the pod mounts no service account token, so the
//     repository's steps get no credentials to the cluster, and the resume
//     signal arrives as a downward-API file mirroring a pod annotation.
func BuildPod(b *v1alpha1.Build, p *v1alpha1.Pipeline, f *steps.File, o PodOptions) *corev1.Pod {
	mounts := []corev1.VolumeMount{{Name: "homeostat", MountPath: binDir}, {Name: "workspace", MountPath: workspaceDir}}
	clone := corev1.Container{
		Name:         "clone",
		Image:        f.Image,
		Command:      []string{agentBinary, "git", "clone", "--url", b.Spec.Repo, "--commit", b.Spec.Commit, "--dir", workspaceDir},
		VolumeMounts: mounts,
	}
	volumes := []corev1.Volume{
		{Name: "homeostat", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "workspace", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{Path: "resume", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + AnnotationResume + "']"}}},
		}}},
	}
	if p.Spec.SecretRef != nil {
		mode := int32(0o444) // read by the steps image's user, whoever that is; only the clone container mounts it
		volumes = append(volumes, corev1.Volume{Name: "git-credentials", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: p.Spec.SecretRef.Name, DefaultMode: &mode}}})
		clone.Command = append(clone.Command, "--secret-dir", gitSecretDir)
		clone.VolumeMounts = append(clone.VolumeMounts, corev1.VolumeMount{Name: "git-credentials", MountPath: gitSecretDir, ReadOnly: true})
	}
	file := p.Spec.File
	if file == "" {
		file = steps.DefaultFile
	}
	always := corev1.ContainerRestartPolicyAlways
	initContainers := []corev1.Container{{
		Name:         "install",
		Image:        o.Image,
		Command:      []string{imageBinary, "copy-self", installDir + "/homeostat"},
		VolumeMounts: []corev1.VolumeMount{{Name: "homeostat", MountPath: installDir}},
	}, clone}
	agentCmd, env := agentCommand(b, f, file)
	agentMounts := append(mounts, corev1.VolumeMount{Name: "podinfo", MountPath: podInfoDir, ReadOnly: true})
	if p.Spec.Logs != nil {
		// First of the sidecars, so it is stopped last, after the services.
		initContainers = append(initContainers, logSidecar(b, p, o))
		volumes = append(volumes, corev1.Volume{Name: "log", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		agentMounts = append(agentMounts, corev1.VolumeMount{Name: "log", MountPath: logDir})
		agentCmd = append(agentCmd, "--log-file", logFile)
	}
	for _, s := range f.Services {
		initContainers = append(initContainers, corev1.Container{
			Name: s.Name, Image: s.Image, Command: s.Command, Env: envVars(s.Env), RestartPolicy: &always,
		})
	}
	deadline := int64(f.Timeout.Seconds()) + extraDeadline
	no := false
	t := true
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      b.Name,
			Namespace: b.Namespace,
			Labels: map[string]string{
				LabelPipeline:           LabelValue(b.Spec.Pipeline.Name),
				LabelBuild:              LabelValue(b.Name),
				v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue,
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "Build", Name: b.Name, UID: b.UID,
				Controller: &t, BlockOwnerDeletion: &t,
			}},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: &no,
			EnableServiceLinks:           &no,
			ActiveDeadlineSeconds:        &deadline,
			Volumes:                      volumes,
			InitContainers:               initContainers,
			Containers: []corev1.Container{{
				Name:    agentName,
				Image:   f.Image,
				Command: agentCmd,
				// Ready means "paused": the Build shows Paused while a person
				// may exec in, and Running again once resumed.
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{agentBinary, "ci", "paused", pausedFile}}},
					PeriodSeconds:    2,
					FailureThreshold: 1,
				},
				WorkingDir:               workspaceDir,
				Env:                      env,
				TerminationMessagePath:   resultFile,
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				VolumeMounts:             agentMounts,
			}},
		},
	}
}

// agentCommand is the agent container's command and environment: the
// file's env, the build's identity and the secretEnv variables, whose
// values the agent masks in the log.
func agentCommand(b *v1alpha1.Build, f *steps.File, file string) ([]string, []corev1.EnvVar) {
	cmd := []string{agentBinary, "ci", "agent", "--dir", workspaceDir, "--file", file,
		"--resume-file", resumeFile, "--result-file", resultFile, "--paused-file", pausedFile}
	env := append(envVars(f.Env),
		corev1.EnvVar{Name: "HOMEOSTAT_BUILD", Value: b.Name},
		corev1.EnvVar{Name: "HOMEOSTAT_COMMIT", Value: b.Spec.Commit},
		corev1.EnvVar{Name: "HOMEOSTAT_BRANCH", Value: b.Spec.Branch},
	)
	var secretNames []string
	for _, s := range f.SecretEnv {
		env = append(env, corev1.EnvVar{Name: s.Name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: s.Secret}, Key: s.Key,
		}}})
		secretNames = append(secretNames, s.Name)
	}
	if len(secretNames) > 0 {
		cmd = append(cmd, "--mask-env", strings.Join(secretNames, ","))
	}
	return cmd, env
}

func envVars(in []steps.EnvVar) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, e := range in {
		out = append(out, corev1.EnvVar{Name: e.Name, Value: e.Value})
	}
	return out
}
