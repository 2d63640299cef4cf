package dashboard

import (
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// TestFilterOptionsFollowVocab: the dashboard's verdict, layer and reason
// filters offer exactly vocab's values (and combinations of them), so a new reason cannot be missing
// from the page (or a removed one linger).
func TestFilterOptionsFollowVocab(t *testing.T) {
	index, err := fs.ReadFile(assets, "assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	option := regexp.MustCompile(`<option(?: value="([^"]*)")?>([^<]*)</option>`)
	for name, want := range map[string][]string{
		"verdict": vocab.Strings(vocab.Verdicts()),
		"layer":   vocab.Strings(vocab.Layers()),
		"reason":  vocab.Strings(vocab.Reasons()),
	} {
		sel := regexp.MustCompile(`(?s)<select name="` + name + `">(.*?)</select>`).FindSubmatch(index)
		if sel == nil {
			t.Errorf("no <select name=%q> in index.html", name)
			continue
		}
		var got []string
		for _, m := range option.FindAllSubmatch(sel[1], -1) {
			v := string(m[2])
			if m[1] != nil || string(m[0]) != "<option>"+v+"</option>" {
				v = string(m[1])
			}
			switch {
			case v == "": // "any"
			case strings.Contains(v, ","): // a combination: each part a value
				for _, part := range strings.Split(v, ",") {
					if !slices.Contains(want, part) {
						t.Errorf("%s option %q: %q is not one of vocab's %v", name, v, part, want)
					}
				}
			default:
				got = append(got, v)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s options %v, want vocab's %v", name, got, want)
		}
	}
}
