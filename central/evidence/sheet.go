package evidence

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
)

// sheetZone is the local time shown on the sheet (China Standard Time).
var sheetZone = time.FixedZone("CST", 8*3600)

var sheetTemplate = template.Must(template.New("sheet").Funcs(template.FuncMap{
	"local": func(t time.Time) string { return plume.FormatTime(t, sheetZone) },
	"utc":   func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"num":   func(v float64) string { return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".") },
	"upper": strings.ToUpper,
	"image": func(k plume.MediaKind) bool {
		return k == plume.MediaScene || k == plume.MediaPlate || k == plume.MediaSmoke
	},
}).Parse(`<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>Evidence sheet {{.Case.Number}}</title>
<style>
body { font-family: "Noto Sans CJK SC", "WenQuanYi Zen Hei", sans-serif; margin: 2em; color: #111; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.8em 0; width: 100%; }
th, td { border: 1px solid #999; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; width: 14em; }
.exceeded { font-weight: bold; color: #a00; }
.mono { font-family: monospace; font-size: 0.85em; word-break: break-all; }
.warn { border: 2px solid #a60; padding: 0.5em; }
img { max-width: 45%; margin: 0.3em; border: 1px solid #999; }
@media print { img { max-width: 48%; } }
</style>
</head>
<body>
<h1>机动车排放违法证据单 · Vehicle emissions evidence sheet</h1>
<p>Case <strong>{{.Case.Number}}</strong> (ID {{.Case.ID}}) · status {{.Case.Status}}</p>

<table>
<tr><th>违法代码 Violation code</th><td><strong>{{.Violation.Code}}</strong> {{.Violation.Text}}</td></tr>
<tr><th>号牌 Plate</th><td>{{with .Pass.Plate}}{{.Text}}{{if .Colour}} ({{.Colour}}{{if .DoubleRow}}, double row{{end}}){{end}}, read confidence {{num .Confidence}}{{else}}not read{{end}}</td></tr>
<tr><th>时间 Time of measurement</th><td>{{local .Pass.Reading.Time}} ({{utc .Pass.Reading.Time}})</td></tr>
<tr><th>地点 Place</th><td>Station {{.Station.ID}}{{if .Station.Name}} — {{.Station.Name}}{{end}}, lane {{.Pass.Reading.Lane}}</td></tr>
<tr><th>Fuel</th><td>{{.Pass.Reading.Fuel}}</td></tr>
<tr><th>Driving conditions</th><td>speed {{num .Pass.Reading.SpeedKmh}} km/h, acceleration {{num .Pass.Reading.AccelMS2}} m/s², road slope {{num .Pass.Reading.SlopePct}} %, VSP {{num .Verdict.VSP}} kW/t</td></tr>
<tr><th>Ambient</th><td>{{num .Pass.Reading.Ambient.TempC}} °C, humidity {{num .Pass.Reading.Ambient.HumidityPct}} %, wind {{num .Pass.Reading.Ambient.WindMS}} m/s, pressure {{num .Pass.Reading.Ambient.PressureKPa}} kPa{{if .Pass.Reading.Ambient.Rain}}, rain{{end}}</td></tr>
{{with .Pass.SmokeSeen}}<tr><th>Camera smoke</th><td>{{if .Smoky}}smoke seen, Ringelmann grade {{.Grade}}{{else}}no smoke{{end}} (confidence {{num .Confidence}})</td></tr>{{end}}
</table>

<h2>Measured values against the limits</h2>
<p>Standard {{.Verdict.Standard}}, limit profile {{.Verdict.Profile}}@{{.Verdict.ProfileVersion}}. 结果代码 Result code {{.Verdict.ResultCode}} ({{.Verdict.Outcome.Label}}).</p>
<table>
<tr><th>Pollutant</th><th>Measured</th><th>Limit</th><th>Result</th></tr>
{{range .Verdict.Checks}}<tr{{if .Exceeded}} class="exceeded"{{end}}><td>{{.Pollutant.Label}}{{if eq .Source "camera"}} (摄像 camera){{end}}</td><td>{{num .Value}} {{.Unit}}</td><td>{{if eq .Source "camera"}}≥ {{end}}{{num .Limit}} {{.Unit}}{{if .Provisional}} (provisional){{end}}</td><td>{{if .Exceeded}}超标 EXCEEDED{{else}}未超标 within{{end}}</td></tr>
{{end}}</table>
<p>{{.Verdict.Summary}}</p>
{{if .Provisional}}<p class="warn">This verdict uses limits marked provisional (from secondary sources); check them against the standard before enforcement.</p>{{end}}

<h2>审核记录 Reviewers</h2>
<table>
<tr><th>Time</th><th>Officer</th><th>Decision</th><th>Comment</th></tr>
{{range .Case.Reviews}}<tr><td>{{local .Time}}</td><td>{{.Name}} ({{.Officer}}, {{.Role}})</td><td>{{.Decision}}{{if .Reason}} ({{.Reason}}){{end}}</td><td>{{.Comment}}</td></tr>
{{else}}<tr><td colspan="4">Not reviewed yet</td></tr>{{end}}</table>
{{if .Case.PlateRead}}{{if ne .Case.PlateRead .Case.Plate}}<p class="warn">Plate read by the station: {{.Case.PlateRead}}; corrected by a reviewer to {{.Case.Plate}}.</p>{{end}}{{end}}

<h2>Media</h2>
<table>
<tr><th>File</th><th>Kind</th><th>Captured</th><th>Size</th><th>SHA-256</th></tr>
{{range .Media}}<tr><td>{{.Path}}</td><td>{{.Kind}}</td><td>{{local .CapturedAt}}</td><td>{{.Size}} B</td><td class="mono">{{.SHA256}}</td></tr>
{{end}}</table>
<p>{{range .Media}}{{if image .Kind}}<img src="media/{{.Name}}" alt="{{.Kind}} {{.Name}}">{{end}}{{end}}</p>

<h2>Integrity</h2>
<table>
<tr><th>Evidence ID</th><td class="mono">{{.Evidence.ID}}</td></tr>
<tr><th>Signed manifest SHA-256</th><td class="mono">{{.Evidence.ManifestSHA256}}</td></tr>
<tr><th>Station key</th><td class="mono">{{.Station.PublicKey}}</td></tr>
<tr><th>Received at central</th><td>{{local .Evidence.ReceivedAt}}</td></tr>
<tr><th>Package built</th><td>{{local .BuiltAt}}</td></tr>
</table>
<p>The manifest was signed by the station at capture. The chain of custody is in custody.jsonl; check the whole package offline with <code>plume-central verify</code>.</p>
</body>
</html>
`))

type sheetData struct {
	*CaseFile
	Provisional bool
}

func renderSheet(cf *CaseFile) ([]byte, error) {
	d := sheetData{CaseFile: cf}
	for _, c := range cf.Verdict.Checks {
		d.Provisional = d.Provisional || c.Provisional
	}
	var b bytes.Buffer
	if err := sheetTemplate.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
