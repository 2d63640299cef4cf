// Package gen generates realistic allowlists for scale tests and
// benchmarks: multi-document YAML of Istio ServiceEntries and
// DestinationRules that serviceentry.ParseConfig accepts without errors.
// It sits before the pipeline (YAML -> serviceentry -> egress/xds) and is
// used only by tests.
package gen
