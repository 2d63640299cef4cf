package decision

// labelUnknown replaces a label value outside its fixed set, so a
// publisher's mistake cannot grow the number of series.
const labelUnknown = "unknown"

// known returns v as a label value when it is one of its type's values,
// else labelUnknown.
func known[T interface {
	~string
	Valid() bool
}](v T) string {
	if v.Valid() {
		return string(v)
	}
	return labelUnknown
}

// Valid reports whether d's layer, verdict and reason are each one of
// their values (vocab): a decision from outside (an access log entry)
// that is not is refused rather than recorded.
func (d *Decision) Valid() bool {
	return d.Layer.Valid() && d.Verdict.Valid() && d.Reason.Valid()
}
