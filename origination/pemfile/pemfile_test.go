package pemfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
	cases := map[string]struct {
		content string
		max     int64
		blocks  int
		err     string
	}{
		"two blocks":      {content: good, max: 1 << 10, blocks: 2},
		"broken block":    {content: good + "-----BEGIN CERTIFICATE-----\n!!\n", max: 1 << 10, err: "1 of 3 blocks do not decode"},
		"no block":        {content: "hello", max: 1 << 10, err: "no PEM block"},
		"too large":       {content: good, max: 16, err: "larger than"},
		"missing END tag": {content: "-----BEGIN CERTIFICATE-----\nAAAA\n", max: 1 << 10, err: "1 of 1 blocks do not decode"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := write(strings.ReplaceAll(name, " ", "-")+".pem", tc.content)
			blocks, err := Read(p, tc.max)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), p) {
					t.Fatalf("err = %v, want %q naming the file", err, tc.err)
				}
				return
			}
			if err != nil || len(blocks) != tc.blocks {
				t.Fatalf("%d blocks, %v", len(blocks), err)
			}
			if !IsKey(blocks[1]) || IsKey(blocks[0]) {
				t.Error("IsKey")
			}
		})
	}
	if _, err := Read(filepath.Join(dir, "missing"), 10); err == nil {
		t.Error("missing file read")
	}
}
