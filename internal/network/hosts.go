package network

import (
	"fmt"
	"slices"
	"strings"
)

// The lines a hosts table gets between these markers are provium's; the
// rest is the guest's own and is kept.
const (
	hostsBegin = "# provium networks: begin"
	hostsEnd   = "# provium networks: end"
)

// HostsFile is the guest's hosts table old with the members of nets
// listed in it, replacing what an earlier HostsFile listed.
func HostsFile(old string, nets []*Network) string {
	var keep []string
	in := false
	for _, line := range strings.SplitAfter(old, "\n") {
		switch strings.TrimSpace(line) {
		case hostsBegin:
			in = true
			continue
		case hostsEnd:
			in = false
			continue
		}
		if !in && line != "" {
			keep = append(keep, line)
		}
	}
	var b strings.Builder
	if len(keep) == 0 {
		// A guest without a hosts table still needs localhost.
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	}
	for _, l := range keep {
		b.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			b.WriteByte('\n')
		}
	}
	b.WriteString(hostsBegin + "\n")
	nets = slices.Clone(nets)
	slices.SortFunc(nets, func(a, b *Network) int { return a.index - b.index })
	for _, n := range nets {
		for _, m := range n.Members() {
			fmt.Fprintf(&b, "%s\t%s\n", m.Addr().Addr(), m.hostname)
		}
	}
	b.WriteString(hostsEnd + "\n")
	return b.String()
}
