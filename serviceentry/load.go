package serviceentry

// Parse decodes and validates every ServiceEntry in one file's bytes. It
// returns the valid entries and every problem; an invalid resource never
// hides the valid ones beside it.
func Parse(file string, data []byte) ([]*Entry, []Problem) {
	objects, problems := Decode(file, data)
	var entries []*Entry
	for _, o := range objects {
		if o.ServiceEntry == nil {
			continue
		}
		e, ps := Validate(o)
		problems = append(problems, ps...)
		if e != nil {
			entries = append(entries, e)
		}
	}
	return entries, problems
}
