package runner

import (
	"fmt"
	"strings"

	"github.com/provium/provium/internal/result"
)

// tally counts the runs of each file: with --repeat, a file passed when
// every one of its runs did.
type tally struct {
	order []string // files in the order their first run finished
	files map[string]*fileTally
}

type fileTally struct {
	passed, skipped int
	failed          []int // the failed runs' numbers
}

func newTally() *tally { return &tally{files: map[string]*fileTally{}} }

func (t *tally) add(f *result.File) {
	ft, ok := t.files[f.Path]
	if !ok {
		ft = &fileTally{}
		t.files[f.Path] = ft
		t.order = append(t.order, f.Path)
	}
	switch f.Status {
	case result.Passed:
		ft.passed++
	case result.Failed:
		ft.failed = append(ft.failed, f.Run)
	default:
		ft.skipped++
	}
}

// count fills in the summary's file counts and, for repeated files, its
// runs.
func (t *tally) count(s *result.Summary) {
	runs := 0
	for _, path := range t.order {
		ft := t.files[path]
		n := ft.passed + ft.skipped + len(ft.failed)
		runs += n
		switch {
		case len(ft.failed) > 0:
			s.Failed++
		case ft.passed > 0:
			s.Passed++
		default:
			s.Skipped++
		}
	}
	for _, ft := range t.files {
		if ft.passed+ft.skipped+len(ft.failed) > 1 {
			s.Runs = runs
			break
		}
	}
}

// lines are the per-file counts of a repeated run, as the console shows
// them: "tests/a.lua  48/50 passed (runs 7, 31 failed)".
func (t *tally) lines() []string {
	var out []string
	for _, path := range t.order {
		ft := t.files[path]
		n := ft.passed + ft.skipped + len(ft.failed)
		l := fmt.Sprintf("%s  %d/%d passed", path, ft.passed, n)
		if ft.skipped > 0 {
			l += fmt.Sprintf(", %d todo", ft.skipped)
		}
		if len(ft.failed) > 0 {
			nums := make([]string, len(ft.failed))
			for i, r := range ft.failed {
				nums[i] = fmt.Sprint(r)
			}
			word := "run"
			if len(nums) > 1 {
				word = "runs"
			}
			l += fmt.Sprintf(" (%s %s failed)", word, strings.Join(nums, ", "))
		}
		out = append(out, l)
	}
	return out
}
