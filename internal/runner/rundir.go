package runner

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoPreviousRun is returned by LastFailed when no run has been recorded.
var ErrNoPreviousRun = errors.New("no previous run")

const (
	latestLink = "latest"     // <base>/latest -> run-<id> of the last completed run
	failedList = "failed.txt" // in a run dir: the failed files, absolute, one a line
	keepRuns   = 20           // older run directories are removed
)

// DefaultBase is where run directories live: provium-runs-<uid> under
// $TMPDIR, else /tmp. It is the user's own: the logs hold guest output,
// and --rerun-failed runs the files a run directory lists, so a directory
// anyone else could have made or written is refused (see secure).
func DefaultBase() string {
	return filepath.Join(os.TempDir(), "provium-runs-"+strconv.Itoa(os.Getuid()))
}

// ErrInsecure means a run directory's base is not the user's alone.
var ErrInsecure = errors.New("not the user's own directory")

// secure makes base if it does not exist (0700) and checks that it is a
// directory of the user's, that nobody else can write to: not a link, not
// another user's, not writable by group or others.
func secure(base string) error {
	if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	st, err := os.Lstat(base)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return fmt.Errorf("%s: %w: it is not a directory (%v)", base, ErrInsecure, st.Mode().Type())
	case ok && int(sys.Uid) != os.Geteuid():
		return fmt.Errorf("%s: %w: it belongs to uid %d; remove it or set TMPDIR", base, ErrInsecure, sys.Uid)
	case st.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s: %w: others can write to it (mode %v); chmod go-w it", base, ErrInsecure, st.Mode().Perm())
	}
	return nil
}

// RunDir is the directory of one run, <base>/run-<id>: one log per file
// while it runs, the logs of failed files afterwards, and failed.txt.
type RunDir struct {
	Path string
	base string
}

// NewRunDir creates a run directory under base. Its id, such as
// 20261127-062000-a3f9, sorts by start time and is unique among runs started
// in the same second. The oldest run directories beyond the last 20 are
// removed, so that the logs of failed runs do not fill /tmp over time.
func NewRunDir(base string, now time.Time) (*RunDir, error) {
	if err := secure(base); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	for range 100 {
		var b [2]byte
		rand.Read(b[:])
		id := now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
		dir := filepath.Join(base, "run-"+id)
		err := os.Mkdir(dir, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("run directory: %w", err)
		}
		prune(base, dir)
		return &RunDir{Path: dir, base: base}, nil
	}
	return nil, fmt.Errorf("run directory: no free name under %s", base)
}

// prune removes the oldest run directories beyond keepRuns, never current
// nor the one latest points to. Errors are ignored: another provium may be
// pruning at the same time, and old logs are not worth failing a run for.
func prune(base, current string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	latest, _ := os.Readlink(filepath.Join(base, latestLink))
	var runs []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "run-") {
			runs = append(runs, e.Name())
		}
	}
	slices.Sort(runs)
	for _, name := range runs[:max(0, len(runs)-keepRuns)] {
		if name != filepath.Base(current) && name != latest {
			os.RemoveAll(filepath.Join(base, name))
		}
	}
}

// LogPaths names one log per file, after its path with "/" replaced by "_"
// ("tests/boot.lua" -> "tests_boot.lua.log"). Paths that would collide
// ("a_b/c.lua" and "a/b_c.lua") get a numbered suffix, in file order.
func (d *RunDir) LogPaths(files []string) []string {
	used := map[string]bool{}
	paths := make([]string, len(files))
	for i, f := range files {
		stem := strings.ReplaceAll(strings.TrimPrefix(f, "/"), "/", "_")
		name := stem + ".log"
		for n := 2; used[name]; n++ {
			name = fmt.Sprintf("%s-%d.log", stem, n)
		}
		used[name] = true
		paths[i] = filepath.Join(d.Path, name)
	}
	return paths
}

// Finish records the run's failed files (absolute paths) and, if latest,
// makes it the run --rerun-failed reads. An interrupted run is not made the
// latest: it would hide the failures of the last run that completed.
func (d *RunDir) Finish(failed []string, latest bool) error {
	var b strings.Builder
	for _, f := range failed {
		b.WriteString(f + "\n")
	}
	if err := os.WriteFile(filepath.Join(d.Path, failedList), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("recording failed files: %w", err)
	}
	if !latest {
		return nil
	}
	// Replace the link atomically, so that a concurrent LastFailed sees
	// the old run or the new one, never none.
	tmp := filepath.Join(d.base, ".latest-"+filepath.Base(d.Path))
	if err := os.Symlink(filepath.Base(d.Path), tmp); err != nil {
		return fmt.Errorf("recording the latest run: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(d.base, latestLink)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("recording the latest run: %w", err)
	}
	return nil
}

// LastFailed returns the files that failed in the latest completed run under
// base, as absolute paths. It returns ErrNoPreviousRun if there is none.
func LastFailed(base string) ([]string, error) {
	if _, err := os.Lstat(base); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoPreviousRun, base)
	}
	// The list is run as code: only from a directory nobody else wrote.
	if err := secure(base); err != nil {
		return nil, fmt.Errorf("reading the last run: %w", err)
	}
	link := filepath.Join(base, latestLink)
	f, err := os.Open(filepath.Join(link, failedList))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoPreviousRun, base)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the last run: %w", err)
	}
	defer f.Close()
	var files []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			files = append(files, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the last run: %w", err)
	}
	return files, nil
}
