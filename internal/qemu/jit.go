package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
)

// tbCount is the line of HMP's "info jit" that counts translated blocks.
var tbCount = regexp.MustCompile(`(?m)^TB count\s+(\d+)`)

// TranslationBlocks returns how many blocks of guest code QEMU's TCG has
// translated so far. Under emulation each QEMU process translates the
// guest's code afresh: the figure says how much of a VM's first work is
// translation rather than the guest's own (see provium bench). It is an
// error under an accelerator that does not translate.
func (p *Process) TranslationBlocks(ctx context.Context) (int, error) {
	ret, err := p.QMP(ctx, "human-monitor-command", map[string]string{"command-line": "info jit"})
	if err != nil {
		return 0, err
	}
	var out string
	if err := json.Unmarshal(ret, &out); err != nil {
		return 0, fmt.Errorf("info jit: %w", err)
	}
	m := tbCount.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("info jit: no TB count (not translating?): %.200q", out)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, fmt.Errorf("info jit: TB count %q: %w", m[1], err)
	}
	return n, nil
}
