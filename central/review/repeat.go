package review

import (
	"fmt"
	"strings"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Classify applies the repeat-exceedance rule (HJ 845-2017, DB11/318-2022)
// to a new case: for each pollutant the pass exceeded, it counts this pass
// and the vehicle's earlier judged passes of that pollutant, newest first,
// while they exceeded too and lie within rule.Window before this pass. A
// judged pass within the limit breaks the run; invalid passes are skipped
// (they judge nothing). A run of rule.Count or more makes an enforcement
// case; otherwise the case is a warning. A pass without a plate cannot be
// linked to earlier passes, and a case with camera smoke only is a smoke
// case. history is the vehicle file, newest first; it may include the pass
// itself, which is skipped.
func Classify(c *central.Case, pass *plume.Pass, history []central.VehicleEntry, rule plume.Repeat, known bool) (central.CaseKind, string) {
	if c.Plate == "" {
		return central.KindUnlinked, "未识别号牌，无法关联历史记录，不能适用复核超标规则。No plate was read, so this pass cannot be linked to the vehicle's earlier passes; the repeat-exceedance rule cannot be applied."
	}
	if len(c.Pollutants) == 0 {
		return central.KindSmoke, fmt.Sprintf("摄像黑烟，林格曼黑度 %d 级；分析仪未超标。Camera black smoke, Ringelmann grade %d; no analyser exceedance.", c.SmokeGrade, c.SmokeGrade)
	}
	t := pass.Reading.Time
	ruleText := fmt.Sprintf("%s内连续 %d 次 %d in a row within %s", windowTextCN(rule.Window), rule.Count, rule.Count, windowText(rule.Window))
	if !known {
		ruleText += "（默认规则：中心无 " + c.Profile + " 标准 default rule: profile " + c.Profile + " not held at central）"
	}
	best, bestP := 0, plume.Pollutant("")
	var bestRun []central.VehicleEntry
	for _, p := range c.Pollutants {
		run := []central.VehicleEntry{}
		for _, e := range history {
			if e.PassID == pass.ID || !e.Time.Before(t) {
				continue
			}
			if t.Sub(e.Time) > rule.Window {
				break
			}
			if !has(e.Judged, p) {
				continue
			}
			if !has(e.Exceeded, p) {
				break
			}
			run = append(run, e)
		}
		if n := len(run) + 1; n > best {
			best, bestP, bestRun = n, p, run
		}
	}
	if best >= rule.Count {
		var prior []string
		for _, e := range bestRun[:rule.Count-1] {
			s := fmt.Sprintf("%s at %s", e.Time.In(central.StatsZone).Format("2006-01-02 15:04"), e.Station)
			if e.CaseID != "" {
				s += " (case " + string(e.CaseID) + ")"
			}
			prior = append(prior, s)
		}
		return central.KindEnforcement, fmt.Sprintf("复核超标：%s 连续 %d 次超标（规则：%s）。Repeat exceedance confirmed: %s exceeded %d times in a row; earlier: %s.",
			bestP.Label(), best, ruleText, strings.ToUpper(string(bestP)), best, strings.Join(prior, "; "))
	}
	return central.KindWarning, fmt.Sprintf("首次超标，予以警告（规则：%s）。First exceedance of %s for this vehicle within the window: a warning.",
		ruleText, pollutantList(c.Pollutants))
}

func windowText(d interface{ Hours() float64 }) string {
	h := d.Hours()
	if h >= 24*28 {
		return fmt.Sprintf("%.0f months", h/730)
	}
	return fmt.Sprintf("%.0f h", h)
}

// windowTextCN is windowText in Chinese ("6 个月", "24 小时").
func windowTextCN(d interface{ Hours() float64 }) string {
	h := d.Hours()
	if h >= 24*28 {
		return fmt.Sprintf("%.0f 个月", h/730)
	}
	return fmt.Sprintf("%.0f 小时", h)
}

func pollutantList(ps []plume.Pollutant) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strings.ToUpper(string(p))
	}
	return strings.Join(s, ", ")
}

func has(list []plume.Pollutant, p plume.Pollutant) bool {
	for _, q := range list {
		if q == p {
			return true
		}
	}
	return false
}
