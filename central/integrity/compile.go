package integrity

import (
	"errors"
	"fmt"
	"time"
)

// compileRule decodes a rule's parameters over its kind's defaults, checks
// them and returns the factory of its per-station state.
func compileRule(r *Rule) (detectorFactory, error) {
	switch r.Kind {
	case KindMissingPasses:
		p := missingPassesParams{MinExpected: 15, MaxRatio: 0.5, Z: 4, Dispersion: 0.01, LearnDays: 2, Alpha: 0.3}
		if err := decodeParams(&r.Params, &p); err != nil {
			return nil, err
		}
		if err := p.validate(); err != nil {
			return nil, err
		}
		return func(rs *ruleState) detector {
			rs.stats.Unit = "hour"
			return &missingPasses{base: base{rs}, p: p}
		}, nil
	case KindMissingStatus:
		p := missingStatusParams{MaxGap: 2 * time.Hour, MinPasses: 100}
		if err := decodeParams(&r.Params, &p); err != nil {
			return nil, err
		}
		if p.MaxGap <= 0 || p.MinPasses < 1 {
			return nil, errors.New("need max_gap > 0 and min_passes ≥ 1")
		}
		return func(rs *ruleState) detector {
			rs.stats.Unit = "status record"
			return &missingStatus{base: base{rs}, p: p}
		}, nil
	case KindDuplicateRecords:
		p := duplicateParams{Window: 24 * time.Hour, MinCount: 1}
		if err := decodeParams(&r.Params, &p); err != nil {
			return nil, err
		}
		if p.Window <= 0 || p.MinCount < 1 {
			return nil, errors.New("need window > 0 and min_count ≥ 1")
		}
		return func(rs *ruleState) detector {
			rs.stats.Unit = "pass"
			return &duplicateRecords{base: base{rs}, p: p, idx: newPrintIndex(p.Window), ids: map[string]uint64{}}
		}, nil
	case KindConstantValue:
		p := constantParams{Fields: fieldNames, MinRun: 10}
		if err := decodeParams(&r.Params, &p); err != nil {
			return nil, err
		}
		if err := checkFields(p.Fields); err != nil {
			return nil, err
		}
		for f, tol := range p.Tolerance {
			if err := checkFields([]string{f}); err != nil {
				return nil, fmt.Errorf("tolerance: %w", err)
			}
			if tol < 0 {
				return nil, fmt.Errorf("tolerance of %s must not be negative", f)
			}
		}
		if p.MinRun < 3 {
			return nil, errors.New("min_run must be at least 3")
		}
		return func(rs *ruleState) detector {
			rs.stats.Unit = "pass"
			return &constantValue{base: base{rs}, p: p, runs: make([]constRun, len(p.Fields))}
		}, nil
	case KindIdenticalSignature:
		p := signatureParams{Window: 24 * time.Hour, MinRepeats: 2}
		if err := decodeParams(&r.Params, &p); err != nil {
			return nil, err
		}
		if p.Window <= 0 || p.MinRepeats < 2 {
			return nil, errors.New("need window > 0 and min_repeats ≥ 2")
		}
		return func(rs *ruleState) detector {
			rs.stats.Unit = "pass"
			return &identicalSignature{base: base{rs}, p: p, idx: newPrintIndex(p.Window), count: map[uint64]*sigGroup{}}
		}, nil
	case KindReplay:
		p := replayParams{MinLag: time.Hour, Horizon: 8 * 24 * time.Hour, MinRun: 5, MaxSkip: 3}
		if err := decodeParams(&r.Params, &p); err != nil {
			return nil, err
		}
		if p.MinLag <= 0 || p.Horizon <= p.MinLag || p.MinRun < 2 || p.MaxSkip < 0 {
			return nil, errors.New("need 0 < min_lag < horizon, min_run ≥ 2 and max_skip ≥ 0")
		}
		return func(rs *ruleState) detector {
			rs.stats.Unit = "pass"
			return &replay{base: base{rs}, p: p, idx: newPrintIndex(p.Horizon)}
		}, nil
	case KindImpossibleValue:
		p := impossibleParams{CO2Min: 1, CO2Max: 17, CarbonMax: 17.5, OpacityMax: 100, MaxAbsAccel: 6, MaxVSP: 100, MaxRingelmannGap: 2, MinCount: 1}
		if err := decodeParams(&r.Params, &p); err != nil {
			return nil, err
		}
		if err := p.validate(); err != nil {
			return nil, err
		}
		return func(rs *ruleState) detector {
			rs.stats.Unit = "pass"
			return &impossibleValue{base: base{rs}, p: p}
		}, nil
	case KindRatioAnomaly:
		p := ratioParams{COCO2Max: 1.5, NOCO2Max: 700, HCCO2Max: 1500, MinCount: 1}
		if err := decodeParams(&r.Params, &p); err != nil {
			return nil, err
		}
		if p.COCO2Max <= 0 || p.NOCO2Max <= 0 || p.HCCO2Max <= 0 || p.MinCount < 1 {
			return nil, errors.New("ratio bounds must be positive and min_count ≥ 1")
		}
		return func(rs *ruleState) detector {
			rs.stats.Unit = "pass"
			return &ratioAnomaly{base: base{rs}, p: p}
		}, nil
	case KindSuddenJump:
		p := jumpParams{Fields: fieldNames, BaselineHours: 24, MinPasses: 30, Z: 5, MinChange: 0.3}
		if err := decodeParams(&r.Params, &p); err != nil {
			return nil, err
		}
		if err := checkFields(p.Fields); err != nil {
			return nil, err
		}
		if p.BaselineHours < 4 || p.MinPasses < 5 || p.Z <= 0 || p.MinChange <= 0 {
			return nil, errors.New("need baseline_hours ≥ 4, min_passes ≥ 5, z > 0 and min_change > 0")
		}
		return func(rs *ruleState) detector {
			rs.stats.Unit = "fuel-field-hour"
			return &suddenJump{base: base{rs}, p: p, series: map[jumpKey]*jumpSeries{}}
		}, nil
	case KindLimitHugging:
		p := huggingParams{Window: 24 * time.Hour, Band: 0.9, NullShare: 0.4, Alpha: 1e-6, MinBand: 20}
		if err := decodeParams(&r.Params, &p); err != nil {
			return nil, err
		}
		if err := p.validate(); err != nil {
			return nil, err
		}
		return func(rs *ruleState) detector {
			rs.stats.Unit = "limit-window"
			return &limitHugging{base: base{rs}, p: p, bins: map[hugKey]*hugBins{}}
		}, nil
	case KindCameraCounts:
		p := countsParams{MinVehicles: 30, MinRatio: 0.8, MaxRatio: 1.2, Z: 3, Settle: 2 * time.Minute, Retain: 6 * time.Hour}
		if err := decodeParams(&r.Params, &p); err != nil {
			return nil, err
		}
		if err := p.validate(); err != nil {
			return nil, err
		}
		return func(rs *ruleState) detector {
			rs.stats.Unit = "camera interval"
			return &cameraCounts{base: base{rs}, p: p}
		}, nil
	case "":
		return nil, errors.New("kind is required")
	}
	return nil, fmt.Errorf("unknown kind %q", r.Kind)
}
