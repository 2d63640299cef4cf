// Package docs holds no code: its tests keep the README's package table
// and docs/architecture.md true to the tree.
package docs
