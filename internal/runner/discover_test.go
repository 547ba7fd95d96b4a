package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tree creates files (paths with "/") under a new directory.
func tree(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("-- test\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDiscover(t *testing.T) {
	dir := tree(t,
		"tests/b.lua",
		"tests/a.lua",
		"tests/helpers.lua",
		"tests/notes.txt",
		"tests/sub/c.lua",
		"tests/fixtures/base.lua",
		"tests/sub/fixtures/deep/layer.lua",
		"tests/fixturesque/d.lua", // only a directory named exactly "fixtures" is skipped
		"other/e.lua",
		".provium/stubs/provium.lua", // hidden directories hold no tests
		"tests/.cache/f.lua",
	)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"walks and skips fixtures", []string{"tests"},
			[]string{"tests/a.lua", "tests/b.lua", "tests/fixturesque/d.lua", "tests/helpers.lua", "tests/sub/c.lua"}},
		{"file taken as given", []string{"tests/fixtures/base.lua", "tests/notes.txt"},
			[]string{"tests/fixtures/base.lua", "tests/notes.txt"}},
		{"named fixtures dir is walked", []string{"tests/fixtures"},
			[]string{"tests/fixtures/base.lua"}},
		{"sorted and deduplicated", []string{"tests/sub", "other", "tests/sub/c.lua", "./tests/sub/"},
			[]string{"other/e.lua", "tests/sub/c.lua"}},
		{"absolute inside start dir", []string{filepath.Join(dir, "other")},
			[]string{"other/e.lua"}},
		{"hidden directories skipped", []string{"."},
			[]string{"other/e.lua", "tests/a.lua", "tests/b.lua", "tests/fixturesque/d.lua", "tests/helpers.lua", "tests/sub/c.lua"}},
		{"named hidden dir is walked", []string{".provium"},
			[]string{".provium/stubs/provium.lua"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Discover(dir, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Discover(%q) = %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}

func TestDiscoverOutsideStartDir(t *testing.T) {
	dir := tree(t, "project/x", "elsewhere/t.lua")
	got, err := Discover(filepath.Join(dir, "project"), []string{"../elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "elsewhere/t.lua")
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %q, want the absolute path %q", got, want)
	}
}

func TestDiscoverMissing(t *testing.T) {
	_, err := Discover(t.TempDir(), []string{"nope"})
	if err == nil || err.Error() != "nope: no such file or directory" {
		t.Errorf("err = %v", err)
	}
}

func TestFilter(t *testing.T) {
	files := []string{"tests/boot.lua", "tests/token.lua", "tests/net/tcp.lua"}
	tests := []struct {
		patterns []string
		want     []string
	}{
		{nil, files},
		{[]string{"tok"}, []string{"tests/token.lua"}},
		{[]string{"boot", "net/"}, []string{"tests/boot.lua", "tests/net/tcp.lua"}},
		{[]string{"nothing"}, nil},
	}
	for _, tt := range tests {
		if got := Filter(files, tt.patterns); !slices.Equal(got, tt.want) {
			t.Errorf("Filter(%q) = %q, want %q", tt.patterns, got, tt.want)
		}
	}
}

func TestParseShard(t *testing.T) {
	for in, want := range map[string]Shard{"1/1": {1, 1}, "2/4": {2, 4}, "4/4": {4, 4}, " 3 / 5 ": {3, 5}} {
		got, err := ParseShard(in)
		if err != nil || got != want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1", "0/4", "5/4", "-1/4", "1/0", "a/b", "1/2/3"} {
		if _, err := ParseShard(in); err == nil {
			t.Errorf("ParseShard(%q): no error", in)
		}
	}
}

func TestShardsCoverEveryFileOnce(t *testing.T) {
	for size := range 40 {
		files := make([]string, size)
		for i := range files {
			files[i] = fmt.Sprintf("tests/%03d.lua", i)
		}
		for n := 1; n <= 5; n++ {
			seen := map[string]int{}
			minSize, maxSize := size, 0
			for k := 1; k <= n; k++ {
				s := Shard{Index: k, Count: n}
				got := s.Select(files)
				if again := s.Select(slices.Clone(files)); !slices.Equal(got, again) {
					t.Fatalf("shard %v of %d files not deterministic", s, size)
				}
				if !slices.IsSorted(got) {
					t.Errorf("shard %v of %d files not in order: %q", s, size, got)
				}
				for _, f := range got {
					seen[f]++
				}
				minSize, maxSize = min(minSize, len(got)), max(maxSize, len(got))
			}
			for _, f := range files {
				if seen[f] != 1 {
					t.Errorf("%d files, %d shards: %s in %d shards", size, n, f, seen[f])
				}
			}
			if len(seen) != size {
				t.Errorf("%d files, %d shards: shards hold %d files", size, n, len(seen))
			}
			if maxSize-minSize > 1 {
				t.Errorf("%d files, %d shards: sizes from %d to %d", size, n, minSize, maxSize)
			}
		}
	}
	// The zero Shard is everything.
	if got := (Shard{}).Select([]string{"a", "b"}); len(got) != 2 {
		t.Errorf("zero shard = %q", got)
	}
}

func TestLogPaths(t *testing.T) {
	d := &RunDir{Path: "/run"}
	got := d.LogPaths([]string{"tests/boot.lua", "a_b/c.lua", "a/b_c.lua", "a/b/c.lua", "/abs/x.lua"})
	want := []string{"/run/tests_boot.lua.log", "/run/a_b_c.lua.log", "/run/a_b_c.lua-2.log", "/run/a_b_c.lua-3.log", "/run/abs_x.lua.log"}
	if !slices.Equal(got, want) {
		t.Errorf("LogPaths = %q, want %q", got, want)
	}
}

func TestRunDirPrunesOldRuns(t *testing.T) {
	base := t.TempDir()
	for i := range 30 {
		if err := os.Mkdir(filepath.Join(base, fmt.Sprintf("run-20200101-0000%02d-abcd", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The latest completed run is kept even when old.
	if err := os.Symlink("run-20200101-000001-abcd", filepath.Join(base, latestLink)); err != nil {
		t.Fatal(err)
	}
	d, err := NewRunDir(base, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(d.Path), "run-20261127-062000-") {
		t.Errorf("run dir %s", d.Path)
	}
	entries, _ := os.ReadDir(base)
	var runs []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "run-") {
			runs = append(runs, e.Name())
		}
	}
	if len(runs) != keepRuns+1 {
		t.Errorf("%d runs left, want %d (the newest and latest): %q", len(runs), keepRuns+1, runs)
	}
	if !slices.Contains(runs, "run-20200101-000001-abcd") || !slices.Contains(runs, filepath.Base(d.Path)) {
		t.Errorf("latest or current run pruned: %q", runs)
	}
}

// The run directory is the user's alone: created 0700 with 0600 logs, and
// one that another user made, that others can write to, or that is a link
// is refused, both for a run and for --rerun-failed, which runs the files
// it lists.
func TestRunDirIsTheUsersOwn(t *testing.T) {
	base := filepath.Join(t.TempDir(), "runs")
	d, err := NewRunDir(base, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{base: 0o700, d.Path: 0o700} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
	if err := d.Finish([]string{"/p/a.lua"}, true); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(d.Path, failedList)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("failed list mode %v", st.Mode().Perm())
	}
	log, err := createLog(filepath.Join(d.Path, "x.log"))
	if err != nil {
		t.Fatal(err)
	}
	log.Close()
	if st, _ := os.Stat(log.Name()); st.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, want 0600", st.Mode().Perm())
	}

	// Writable by others: a planted failed.txt could run anything.
	os.Chmod(base, 0o777)
	if _, err := NewRunDir(base, testNow); !errors.Is(err, ErrInsecure) {
		t.Errorf("a world-writable base: %v", err)
	}
	if _, err := LastFailed(base); !errors.Is(err, ErrInsecure) {
		t.Errorf("rerun from a world-writable base: %v", err)
	}
	os.Chmod(base, 0o700)
	if _, err := LastFailed(base); err != nil {
		t.Errorf("rerun from the user's own base: %v", err)
	}

	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(base, link)
	if _, err := NewRunDir(link, testNow); !errors.Is(err, ErrInsecure) {
		t.Errorf("a base that is a link: %v", err)
	}

	if os.Geteuid() == 0 {
		other := filepath.Join(t.TempDir(), "others")
		os.Mkdir(other, 0o700)
		os.Chown(other, 65534, 65534)
		if _, err := NewRunDir(other, testNow); !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("another user's base: %v", err)
		}
	}
}

// TestFixtureScripts finds a fixture's scripts at any depth, as discovery
// walks: into fixtures directories, past hidden ones.
func TestFixtureScripts(t *testing.T) {
	dir := tree(t,
		"fixtures/db.lua",
		"tests/fixtures/db.lua",
		"tests/sub/fixtures/db.lua",
		"tests/fixtures/web.lua",
		"tests/db.lua",                 // a test, not a fixture
		"tests/notfixtures/db.lua",     // only a directory named exactly "fixtures" holds them
		".git/fixtures/db.lua",         // hidden directories are tools'
		"tests/.cache/fixtures/db.lua", // at any depth
	)
	got, err := FixtureScripts(dir, "db")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(dir, "fixtures/db.lua"),
		filepath.Join(dir, "tests/fixtures/db.lua"),
		filepath.Join(dir, "tests/sub/fixtures/db.lua"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("FixtureScripts(db) = %q, want %q", got, want)
	}
	if got, err := FixtureScripts(filepath.Join(dir, "tests"), "web"); err != nil || !slices.Equal(got, []string{filepath.Join(dir, "tests/fixtures/web.lua")}) {
		t.Errorf("FixtureScripts(tests, web) = %q, %v", got, err)
	}
	if got, err := FixtureScripts(dir, "none"); err != nil || len(got) != 0 {
		t.Errorf("FixtureScripts(none) = %q, %v; want nothing", got, err)
	}
	if _, err := FixtureScripts(filepath.Join(dir, "missing"), "db"); err == nil {
		t.Error("FixtureScripts under a missing directory: no error")
	}
}
