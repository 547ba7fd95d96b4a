// Package luastubs holds the type definitions of Provium's Lua API for
// lua-language-server (LuaLS), so that editors complete, document and
// type-check test scripts, and writes them into a suite with the
// .luarc.json that points the server at them.
//
// The functions, objects and options are described by hand in
// provium.lua, which the binary embeds; a test holds it to what the
// runtime registers. The tables of names (provium.sys, provium.errno,
// provium.c) are written from the runtime's own tables.
package luastubs

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/provium/provium/internal/luaapi"
)

//go:embed provium.lua
var definitions []byte

// Dir is where in a suite the definitions go, relative to its root: a
// hidden directory, which test discovery passes over.
const Dir = ".provium/stubs"

// LuaRCFile is LuaLS's configuration file, at the suite's root.
const LuaRCFile = ".luarc.json"

// Definitions returns the definition files by name.
func Definitions() (map[string][]byte, error) {
	s, err := luaapi.ReadSurface()
	if err != nil {
		return nil, fmt.Errorf("stubs: %w", err)
	}
	return map[string][]byte{
		"provium.lua":       definitions,
		"provium_names.lua": names(s),
	}, nil
}

// constantDocs say what each table of names holds.
var constantDocs = map[string]string{
	"sys":   "System call numbers of the guest's architecture (x86_64), by name: vm:syscall(provium.sys.openat, ...) or vm:syscall(\"openat\", ...).",
	"errno": "Error numbers by name: a failed system call returns -provium.errno.ENOENT.",
	"c":     "Flag and constant values of the guest's kernel ABI: O_*, AT_*, CLONE_*, MFD_*, CAP_* and more.",
}

// names renders the tables of names as the runtime has them.
func names(s *luaapi.Surface) []byte {
	var b strings.Builder
	b.WriteString("---@meta provium_names\n")
	b.WriteString("-- Names for the guest's numbers, as this provium build has them.\n")
	b.WriteString("-- Written by `provium stubs`; never run. Reading a name a table lacks is an error at run time.\n")
	for _, table := range slices.Sorted(maps.Keys(s.Constants)) {
		doc := constantDocs[table]
		if doc == "" {
			doc = "Names for numbers."
		}
		fmt.Fprintf(&b, "\n---%s\nprovium.%s = {\n", doc, table)
		values := s.Constants[table]
		for _, name := range slices.Sorted(maps.Keys(values)) {
			fmt.Fprintf(&b, "\t%s = %s,\n", name, strconv.FormatFloat(values[name], 'f', -1, 64))
		}
		b.WriteString("}\n")
	}
	return []byte(b.String())
}

// LuaRC is a .luarc.json for a suite: Lua 5.1 (gopher-lua's), with the
// definitions as a library, so the server neither reports problems in
// them nor asks about them.
func LuaRC() []byte {
	rc := map[string]any{
		"runtime":   map[string]any{"version": "Lua 5.1"},
		"workspace": map[string]any{"library": []string{Dir}, "checkThirdParty": false},
	}
	b, _ := json.MarshalIndent(rc, "", "  ")
	return append(b, '\n')
}

// Write writes the definitions into dir's Dir, replacing earlier ones,
// and a .luarc.json unless dir has one. It returns the files written,
// relative to dir, and a note for the user when an existing .luarc.json
// does not name the definitions.
func Write(dir string) (written []string, note string, err error) {
	files, err := Definitions()
	if err != nil {
		return nil, "", err
	}
	stubs := filepath.Join(dir, filepath.FromSlash(Dir))
	if err := os.MkdirAll(stubs, 0o755); err != nil {
		return nil, "", fmt.Errorf("stubs: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := os.WriteFile(filepath.Join(stubs, name), files[name], 0o644); err != nil {
			return written, "", fmt.Errorf("stubs: %w", err)
		}
		written = append(written, filepath.ToSlash(filepath.Join(Dir, name)))
	}
	rcPath := filepath.Join(dir, LuaRCFile)
	old, err := os.ReadFile(rcPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.WriteFile(rcPath, LuaRC(), 0o644); err != nil {
			return written, "", fmt.Errorf("stubs: %w", err)
		}
		written = append(written, LuaRCFile)
	case err != nil:
		return written, "", fmt.Errorf("stubs: %w", err)
	case !strings.Contains(string(old), Dir):
		note = fmt.Sprintf("%s exists and was left as it is; add %q to its workspace.library for LuaLS to find the definitions", rcPath, Dir)
	}
	return written, note, nil
}
