package dashboard

import "github.com/egressd/egressd/egress/gateway"

// GatewayView is the JSON body of /api/v1/gateway: the gateway model the
// xDS server last published, and its filter chains in words.
type GatewayView struct {
	// Loaded is false before the first publish; everything else is then
	// empty.
	Loaded bool `json:"loaded"`
	// Rows describe every filter chain, listener by listener.
	Rows []gateway.Row `json:"rows"`
	// Clusters counts the upstream clusters.
	Clusters int `json:"clusters"`
	// Gateway is the whole model.
	Gateway *gateway.Gateway `json:"gateway,omitempty"`
}

// NewGatewayView builds the view of g (nil: nothing published yet).
func NewGatewayView(g *gateway.Gateway) GatewayView {
	if g == nil {
		return GatewayView{Rows: []gateway.Row{}}
	}
	return GatewayView{Loaded: true, Rows: g.Rows(), Clusters: len(g.Clusters), Gateway: g}
}
