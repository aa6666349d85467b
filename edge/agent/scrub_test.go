package agent_test

import (
	"testing"
	"time"

	"github.com/plume-emissions/plume/edge/agent"
	"github.com/plume-emissions/plume/edge/agent/agenttest"
)

// TestHeartbeatReportsScrub: the agent scrubs its spool in the background
// and says when in its heartbeat.
func TestHeartbeatReportsScrub(t *testing.T) {
	r := startOpsRig(t, nil, agent.HealthOptions{}, nil)
	agenttest.WaitFor(t, 10*time.Second, "a scrub in the heartbeat", func() (bool, string) {
		hb := r.agent.Heartbeat()
		return !hb.Spool.LastScrub.IsZero(), hb.Spool.LastScrub.String()
	})
}
