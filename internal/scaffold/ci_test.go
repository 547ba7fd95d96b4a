package scaffold

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/provium/provium/internal/runner"
)

// The CI recipes are checked by the linters their platforms have, where
// one can run here, and their shard arithmetic by running it: every
// recipe's N jobs must ask provium for shards 1/N .. N/N, which together
// cover the suite once.

func recipeData(t *testing.T, name string) []byte {
	t.Helper()
	data, _, err := Recipe(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestGitHubWorkflowPassesActionlint runs actionlint, pinned in go.mod as a
// tool (go tool actionlint) and so never linked into provium. actionlint
// also checks the run: scripts with shellcheck when it is installed
// (scripts/setup --tests installs it).
func TestGitHubWorkflowPassesActionlint(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is needed to run actionlint (go tool actionlint): %v", err)
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Log("shellcheck is not installed: actionlint checks the workflow but not its scripts")
	}
	dir := t.TempDir()
	wf := filepath.Join(dir, ".github", "workflows", "provium.yml")
	os.MkdirAll(filepath.Dir(wf), 0o755)
	os.WriteFile(wf, recipeData(t, "github"), 0o644)
	cmd := exec.Command(gobin, "tool", "actionlint", "-no-color", wf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("actionlint: %v\n%s", err, out)
	}
	// The linter does find faults: a broken copy fails.
	bad := strings.Replace(string(recipeData(t, "github")), "runs-on:", "runs_on:", 1)
	os.WriteFile(wf, []byte(bad), 0o644)
	if out, err := exec.Command(gobin, "tool", "actionlint", "-no-color", wf).CombinedOutput(); err == nil {
		t.Fatalf("actionlint passed a workflow without runs-on:\n%s", out)
	}
}

func TestGitHubWorkflowShards(t *testing.T) {
	var wf struct {
		Jobs map[string]struct {
			Strategy struct {
				Matrix struct{ Shard []int }
			}
			Steps []struct {
				Uses string
				Run  string
				With map[string]any
			}
		}
	}
	if err := yaml.Unmarshal(recipeData(t, "github"), &wf); err != nil {
		t.Fatal(err)
	}
	job, ok := wf.Jobs["test"]
	if !ok {
		t.Fatalf("no job test: %+v", wf)
	}
	shards := job.Strategy.Matrix.Shard
	var run string
	var cached, uploaded bool
	for _, s := range job.Steps {
		if strings.Contains(s.Run, "provium test") {
			run = s.Run
		}
		if strings.HasPrefix(s.Uses, "actions/cache@") && s.With["path"] == "~/.cache/provium" {
			cached = true
		}
		if strings.HasPrefix(s.Uses, "actions/upload-artifact@") && strings.Contains(s.With["path"].(string), "junit") {
			uploaded = true
		}
	}
	if !cached || !uploaded || !strings.Contains(run, "--junit") {
		t.Errorf("the workflow must cache ~/.cache/provium (%v), write JUnit and upload it (%v): %q", cached, uploaded, run)
	}
	var lines []string
	for _, k := range shards {
		// What Actions substitutes: the matrix value and the number of jobs.
		s := strings.ReplaceAll(run, "${{ matrix.shard }}", strconv.Itoa(k))
		s = strings.ReplaceAll(s, "${{ strategy.job-total }}", strconv.Itoa(len(shards)))
		lines = append(lines, shell(t, s, nil))
	}
	checkShards(t, "GitHub", lines)
}

// GitLab CI has no linter that runs offline (its own checks the file on a
// GitLab server), so the recipe's structure is checked here: the keys a job
// may have, parallel, and a script that runs shard CI_NODE_INDEX of
// CI_NODE_TOTAL.
func TestGitLabRecipe(t *testing.T) {
	var ci map[string]map[string]any
	if err := yaml.UnmarshalStrict(recipeData(t, "gitlab"), &ci); err != nil {
		t.Fatal(err)
	}
	job, ok := ci["provium"]
	if !ok || len(ci) != 1 {
		t.Fatalf("want one job, provium: %v", ci)
	}
	keywords := []string{"after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage",
		"dependencies", "environment", "except", "extends", "id_tokens", "image", "inherit", "interruptible",
		"needs", "only", "pages", "parallel", "release", "resource_group", "retry", "rules", "script",
		"secrets", "services", "stage", "tags", "timeout", "trigger", "variables", "when"}
	for k := range job {
		if !slices.Contains(keywords, k) {
			t.Errorf("job provium: %q is not a GitLab CI job keyword", k)
		}
	}
	n, ok := job["parallel"].(float64)
	if !ok || n < 2 || n > 200 {
		t.Fatalf("parallel: %v, want a number of jobs 2..200", job["parallel"])
	}
	vars := job["variables"].(map[string]any)
	cachePaths := job["cache"].(map[string]any)["paths"].([]any)
	if dir := strings.TrimPrefix(vars["PROVIUM_CACHE"].(string), "$CI_PROJECT_DIR/"); len(cachePaths) != 1 || strings.TrimSuffix(cachePaths[0].(string), "/") != dir {
		t.Errorf("the cached paths %v are not PROVIUM_CACHE %v", cachePaths, vars["PROVIUM_CACHE"])
	}
	if junit := job["artifacts"].(map[string]any)["reports"].(map[string]any)["junit"]; junit == nil {
		t.Errorf("no JUnit report")
	}
	var script string
	for _, l := range job["script"].([]any) {
		if strings.Contains(l.(string), "provium test") {
			script = l.(string)
		}
	}
	if !strings.Contains(script, "CI_NODE_INDEX") || !strings.Contains(script, "CI_NODE_TOTAL") {
		t.Fatalf("the script does not shard by CI_NODE_INDEX/CI_NODE_TOTAL: %q", script)
	}
	var lines []string
	for k := 1; k <= int(n); k++ { // GitLab's CI_NODE_INDEX counts from 1
		lines = append(lines, shell(t, script, []string{"CI_NODE_INDEX=" + strconv.Itoa(k), "CI_NODE_TOTAL=" + strconv.Itoa(int(n))}))
	}
	checkShards(t, "GitLab", lines)
}

// The Kubernetes manifest is decoded strictly into the API's own Job type
// (k8s.io/api, in this test only): an unknown or misplaced field fails.
func TestKubernetesIndexedJob(t *testing.T) {
	var job batchv1.Job
	if err := yaml.UnmarshalStrict(recipeData(t, "kubernetes"), &job); err != nil {
		t.Fatalf("not a batch/v1 Job: %v", err)
	}
	if job.APIVersion != "batch/v1" || job.Kind != "Job" {
		t.Fatalf("apiVersion %q kind %q", job.APIVersion, job.Kind)
	}
	spec := job.Spec
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Fatalf("completionMode %v, want Indexed", spec.CompletionMode)
	}
	if spec.Completions == nil || spec.Parallelism == nil || *spec.Completions != *spec.Parallelism {
		t.Fatalf("completions %v and parallelism %v must be set and agree", spec.Completions, spec.Parallelism)
	}
	pod := spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("restartPolicy %q: a Job's pods need Never or OnFailure", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	kvmVolume := ""
	for _, v := range pod.Volumes {
		if v.HostPath != nil && v.HostPath.Path == "/dev/kvm" {
			if v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathCharDev {
				t.Errorf("the /dev/kvm hostPath is not of type CharDevice")
			}
			kvmVolume = v.Name
		}
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || (m.Name == kvmVolume && m.MountPath == "/dev/kvm")
	}
	if kvmVolume == "" || !mounted {
		t.Errorf("/dev/kvm is not mounted from the node (volume %q, mounted %v)", kvmVolume, mounted)
	}
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Errorf("a hostPath device needs a privileged container to be opened")
	}
	script := strings.Join(c.Args, " ")
	if !strings.Contains(script, "JOB_COMPLETION_INDEX") {
		t.Fatalf("the command does not use JOB_COMPLETION_INDEX: %q", script)
	}
	var env []string
	for _, e := range c.Env {
		env = append(env, e.Name+"="+e.Value)
		if e.Name == "SHARDS" && e.Value != strconv.Itoa(int(*spec.Completions)) {
			t.Errorf("SHARDS=%s but completions %d", e.Value, *spec.Completions)
		}
	}
	var lines []string
	for i := 0; i < int(*spec.Completions); i++ { // the index counts from 0
		lines = append(lines, shell(t, script, append(env, "JOB_COMPLETION_INDEX="+strconv.Itoa(i))))
	}
	checkShards(t, "Kubernetes", lines)
}

// shell runs a recipe's command line with sh, provium replaced by a
// function that prints its arguments, and returns what it printed.
func shell(t *testing.T, script string, env []string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `provium() { printf '%s\n' "$*"; }; `+strings.ReplaceAll(script, "exec provium", "provium"))
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c %q: %v\n%s", script, err, out)
	}
	return strings.TrimSpace(string(out))
}

// checkShards checks that the jobs' provium command lines ask for shards
// 1/N .. N/N, in provium's own syntax, which together select every file
// once.
func checkShards(t *testing.T, ci string, lines []string) {
	t.Helper()
	n := len(lines)
	if n < 2 {
		t.Fatalf("%s: %d jobs", ci, n)
	}
	files := make([]string, 10)
	for i := range files {
		files[i] = "tests/" + strconv.Itoa(i) + ".lua"
	}
	seen := map[string]int{}
	for i, line := range lines {
		m := regexp.MustCompile(`--shard (\S+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s job %d runs %q: no --shard", ci, i, line)
		}
		sh, err := runner.ParseShard(m[1])
		if err != nil {
			t.Fatalf("%s job %d: %v", ci, i, err)
		}
		if sh.Index != i+1 || sh.Count != n {
			t.Errorf("%s job %d runs shard %s, want %d/%d", ci, i, m[1], i+1, n)
		}
		for _, f := range sh.Select(files) {
			seen[f]++
		}
	}
	for _, f := range files {
		if seen[f] != 1 {
			t.Errorf("%s: %s runs in %d jobs", ci, f, seen[f])
		}
	}
}
