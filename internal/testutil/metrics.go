package testutil

import (
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape, parsed with Prometheus's own text parser.
type Metrics map[string]*dto.MetricFamily

// Scrape reads url's metrics in the text format and parses them.
func Scrape(url string) (Metrics, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// ParseMetrics parses metrics in Prometheus's text format.
func ParseMetrics(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Value returns the value of the first gauge, counter or histogram's count
// named name whose labels include labels (name, value pairs), and whether
// there is one.
func (m Metrics) Value(name string, labels ...string) (float64, bool) {
	values := m.values(name, labels)
	if len(values) == 0 {
		return 0, false
	}
	return values[0], true
}

// Sum returns the sum of the values Value would choose from.
func (m Metrics) Sum(name string, labels ...string) float64 {
	var sum float64
	for _, v := range m.values(name, labels) {
		sum += v
	}
	return sum
}

func (m Metrics) values(name string, labels []string) []float64 {
	fam, ok := m[name]
	if !ok {
		return nil
	}
	var out []float64
	for _, metric := range fam.Metric {
		if !hasLabels(metric, labels) {
			continue
		}
		switch {
		case metric.Gauge != nil:
			out = append(out, metric.Gauge.GetValue())
		case metric.Counter != nil:
			out = append(out, metric.Counter.GetValue())
		case metric.Histogram != nil:
			out = append(out, float64(metric.Histogram.GetSampleCount()))
		}
	}
	return out
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.Label {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
