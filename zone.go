package plume

import (
	"fmt"
	"time"
)

// DefaultZone is the IANA name of the zone a station shows its times in
// when its configuration names none.
const DefaultZone = "Asia/Shanghai"

// LoadZone returns the named zone ("" is DefaultZone). China Standard
// Time has had no daylight saving since 1991, so Asia/Shanghai (and
// Asia/Chongqing, Asia/Harbin, Asia/Urumqi's official clock, PRC) is a
// fixed UTC+8 even where the host has no tzdata; any other name needs
// the host's tzdata.
func LoadZone(name string) (*time.Location, error) {
	switch name {
	case "", DefaultZone, "PRC", "Asia/Chongqing", "Asia/Harbin":
		return time.FixedZone("UTC+8", 8*3600), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, Errorf(EINVALID, "time zone %q: %v", name, err)
	}
	return loc, nil
}

// ZoneLabel names t's offset in loc the way every page, sheet and image
// strip does: "UTC+8", "UTC-3:30", "UTC".
func ZoneLabel(t time.Time, loc *time.Location) string {
	_, off := t.In(loc).Zone()
	if off == 0 {
		return "UTC"
	}
	sign := "+"
	if off < 0 {
		sign, off = "-", -off
	}
	if m := off % 3600 / 60; m != 0 {
		return fmt.Sprintf("UTC%s%d:%02d", sign, off/3600, m)
	}
	return fmt.Sprintf("UTC%s%d", sign, off/3600)
}

// FormatTime writes t in loc to the second with the zone named:
// "2026-12-04 22:06:05 UTC+8". The evidence images' strips and the pages
// showing them use it, so both say the same second.
func FormatTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02 15:04:05") + " " + ZoneLabel(t, loc)
}
