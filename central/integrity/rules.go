package integrity

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/plume-emissions/plume"
	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

// Severity says how urgently an alert needs a person.
type Severity string

const (
	SeverityInfo     Severity = "info"     // worth a look at the next review
	SeverityWarning  Severity = "warning"  // look today
	SeverityCritical Severity = "critical" // evidence from the station is in doubt
)

func (s Severity) valid() bool {
	return s == SeverityInfo || s == SeverityWarning || s == SeverityCritical
}

// Category is the family of the three-value analysis a rule belongs to.
type Category string

const (
	CategoryMissing      Category = "missing"       // 缺失: gaps against usual traffic
	CategoryRepeated     Category = "repeated"      // 重复: duplicates, 恒值, copied plumes
	CategoryAbnormal     Category = "abnormal"      // 异常: impossible values, 突升突降, ratios
	CategoryLimitHugging Category = "limit_hugging" // 贴限: readings crowding under a limit
	CategoryCounts       Category = "counts"        // passes against camera vehicle counts
	CategoryReplay       Category = "replay"        // old data played back as new
)

// Kinds of rule: each names one detector. A rule set may use a kind more
// than once with different parameters (a strict and a lenient variant).
const (
	KindMissingPasses      = "missing_passes"
	KindMissingStatus      = "missing_status"
	KindDuplicateRecords   = "duplicate_records"
	KindConstantValue      = "constant_value"
	KindIdenticalSignature = "identical_signature"
	KindImpossibleValue    = "impossible_value"
	KindSuddenJump         = "sudden_jump"
	KindRatioAnomaly       = "ratio_anomaly"
	KindLimitHugging       = "limit_hugging"
	KindCameraCounts       = "camera_counts"
	KindReplay             = "replay"
)

// Rule is one configured rule: a detector kind, its parameters and how
// bad it is when it fires. A rule's ID is stable across versions; bump
// Version whenever its parameters or meaning change, so an alert can always
// be traced to the exact rule that raised it.
type Rule struct {
	ID          string    `yaml:"id" json:"id"`
	Kind        string    `yaml:"kind" json:"kind"`
	Version     int       `yaml:"version" json:"version"`
	Severity    Severity  `yaml:"severity" json:"severity"`
	Disabled    bool      `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	Title       string    `yaml:"title" json:"title"`
	Description string    `yaml:"description,omitempty" json:"description,omitempty"`
	Params      yaml.Node `yaml:"params,omitempty" json:"-"`
}

// Category returns the family of the rule's kind.
func (r *Rule) Category() Category {
	switch r.Kind {
	case KindMissingPasses, KindMissingStatus:
		return CategoryMissing
	case KindDuplicateRecords, KindConstantValue, KindIdenticalSignature:
		return CategoryRepeated
	case KindImpossibleValue, KindSuddenJump, KindRatioAnomaly:
		return CategoryAbnormal
	case KindLimitHugging:
		return CategoryLimitHugging
	case KindCameraCounts:
		return CategoryCounts
	case KindReplay:
		return CategoryReplay
	}
	return ""
}

// Ref returns "id@vN", the way alerts cite the rule.
func (r *Rule) Ref() string { return fmt.Sprintf("%s@v%d", r.ID, r.Version) }

// RuleSet is a versioned set of rules (firmware-config/integrity). The set's
// version changes whenever any rule is added, removed or changed.
type RuleSet struct {
	Version     string `yaml:"version" json:"version"`
	Title       string `yaml:"title" json:"title"`
	Location    string `yaml:"location,omitempty" json:"location,omitempty"` // IANA zone for hour-of-day baselines [UTC]
	Rules       []Rule `yaml:"rules" json:"rules"`
	loc         *time.Location
	compiledFor map[string]detectorFactory
}

var ruleIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ParseRules decodes and checks a rule set. Unknown fields anywhere, the
// rules' parameters included, are errors, so a misspelt threshold is never
// silently ignored.
func ParseRules(b []byte) (*RuleSet, error) {
	var rs RuleSet
	if err := firmwareconfig.DecodeStrict(b, &rs); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if err := rs.compile(); err != nil {
		return nil, err
	}
	return &rs, nil
}

// LoadRules reads and parses a rule set from a file system.
func LoadRules(fsys fs.FS, name string) (*RuleSet, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open rules: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRulesFile+1))
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	if len(b) > maxRulesFile {
		return nil, plume.Errorf(plume.ETOOLARGE, "rules file %s is larger than %d bytes", name, maxRulesFile)
	}
	rs, err := ParseRules(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rs, nil
}

// DefaultRulesFile is the shipped rule set inside firmware-config.
const DefaultRulesFile = "integrity/rules.yaml"

// DefaultRules returns the rule set shipped in firmware-config.
func DefaultRules() (*RuleSet, error) { return LoadRules(firmwareconfig.FS, DefaultRulesFile) }

const maxRulesFile = 1 << 20

// Rule returns the rule with the given ID, or nil.
func (rs *RuleSet) Rule(id string) *Rule {
	for i := range rs.Rules {
		if rs.Rules[i].ID == id {
			return &rs.Rules[i]
		}
	}
	return nil
}

// Only returns a copy of the set holding just the rules with the given IDs
// (for backtesting one rule). Unknown IDs are an error.
func (rs *RuleSet) Only(ids ...string) (*RuleSet, error) {
	out := *rs
	out.Rules = nil
	for _, id := range ids {
		r := rs.Rule(id)
		if r == nil {
			return nil, plume.Errorf(plume.ENOTFOUND, "rule set %s has no rule %q", rs.Version, id)
		}
		out.Rules = append(out.Rules, *r)
	}
	return &out, nil
}

func (rs *RuleSet) compile() error {
	bad := func(format string, args ...any) error {
		return plume.Errorf(plume.EINVALID, "rules: %s", fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(rs.Version) == "" {
		return bad("version is required")
	}
	if len(rs.Rules) == 0 {
		return bad("at least one rule is required")
	}
	rs.loc = time.UTC
	if rs.Location != "" {
		// A fixed offset ("+08:00") needs no tzdata, which a static
		// central binary may lack; an IANA name is loaded as such.
		if t, err := time.Parse("-07:00", rs.Location); err == nil {
			_, off := t.Zone()
			rs.loc = time.FixedZone("UTC"+rs.Location, off)
		} else {
			loc, err := time.LoadLocation(rs.Location)
			if err != nil {
				return bad("location %q: %v", rs.Location, err)
			}
			rs.loc = loc
		}
	}
	rs.compiledFor = map[string]detectorFactory{}
	seen := map[string]bool{}
	for i := range rs.Rules {
		r := &rs.Rules[i]
		switch {
		case !ruleIDPattern.MatchString(r.ID):
			return bad("rule %d: bad id %q (lowercase letters, digits, '-' and '_')", i+1, r.ID)
		case seen[r.ID]:
			return bad("rule %q defined twice", r.ID)
		case r.Version < 1:
			return bad("rule %q: version must be at least 1", r.ID)
		case !r.Severity.valid():
			return bad("rule %q: severity must be info, warning or critical, not %q", r.ID, r.Severity)
		case r.Title == "":
			return bad("rule %q: title is required", r.ID)
		}
		seen[r.ID] = true
		f, err := compileRule(r)
		if err != nil {
			return bad("rule %q: %v", r.ID, err)
		}
		rs.compiledFor[r.ID] = f
	}
	return nil
}

// decodeParams decodes a rule's params node strictly into p, which holds
// the defaults on entry. An absent params block keeps every default.
func decodeParams(n *yaml.Node, p any) error {
	if n.Kind == 0 {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return errors.New("params must be a mapping")
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return fmt.Errorf("params: %w", err)
	}
	if err := firmwareconfig.DecodeStrict(b, p); err != nil {
		return fmt.Errorf("params: %w", err)
	}
	return nil
}
