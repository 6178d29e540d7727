//! [`Metrics`]: a scrape of `/metrics`, read by name and labels.

/// One scrape of a Prometheus text exposition (what the admin port's
/// `/metrics` answers), read by metric name and labels.
///
/// The Prometheus recorder is global to the process: tests that run in
/// parallel in one binary add to the same counters, so compare against a
/// scrape taken before, or use labels of the test's own.
///
/// ```
/// use chassis_testkit::Metrics;
///
/// let metrics = Metrics::parse(
///     "# HELP chassis_tasks_succeeded_total Tasks that succeeded\n\
///      chassis_tasks_succeeded_total{task=\"price_item\"} 20\n\
///      chassis_tasks_succeeded_total{task=\"send_email\"} 3\n",
/// );
/// assert_eq!(metrics.counter("chassis_tasks_succeeded_total", &[("task", "price_item")]), Some(20.0));
/// assert_eq!(metrics.sum("chassis_tasks_succeeded_total", &[]), 23.0);
/// assert_eq!(metrics.counter("chassis_tasks_failed_total", &[]), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    samples: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Metrics {
    /// Parses the text format; lines it cannot read (comments, malformed
    /// samples) are skipped.
    pub fn parse(text: &str) -> Self {
        Self { samples: text.lines().filter_map(parse_sample).collect() }
    }

    /// The value of the first sample named `name` that carries every label
    /// of `labels` (it may carry more); `None` when there is none. For a
    /// counter, a gauge, or a histogram's `_count`/`_sum`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels).next()
    }

    /// The same as [`counter`](Self::counter), for a gauge.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.counter(name, labels)
    }

    /// The sum of every sample named `name` carrying `labels`; 0 when none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).sum()
    }

    /// Whether any sample is named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = f64> + 'a {
        self.samples
            .iter()
            .filter(move |s| {
                s.name == name && labels.iter().all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
    }
}

/// `name{a="1",b="x \"y\""} 12.5` (an optional timestamp after the value).
fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find(['{', ' ']) {
        Some(i) if line[i..].starts_with('{') => {
            let (labels, rest) = parse_labels(&line[i + 1..])?;
            (&line[..i], labels, rest)
        }
        Some(i) => (&line[..i], Vec::new(), &line[i..]),
        None => return None,
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample { name: name.to_owned(), labels, value })
}

/// The labels after `{`, and what follows the closing `}`.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = text.find('=')?;
        let key = text[..eq].trim().to_owned();
        let mut chars = text[eq + 1..].char_indices();
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (i, '"') => break eq + 1 + i + 1,
                (_, c) => value.push(c),
            }
        };
        labels.push((key, value));
        text = &text[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_with_escapes_histograms_and_bad_lines() {
        let metrics = Metrics::parse(
            "a{x=\"1\",y=\"q\\\"uote\"} 2\n\
             b_bucket{le=\"+Inf\"} 4\n\
             b_count 4 1700000000\n\
             garbage{ 3\n\
             c NaNx\n",
        );
        assert_eq!(metrics.counter("a", &[("y", "q\"uote")]), Some(2.0));
        assert_eq!(metrics.counter("a", &[("x", "2")]), None);
        assert_eq!(metrics.counter("b_bucket", &[("le", "+Inf")]), Some(4.0));
        assert_eq!(metrics.counter("b_count", &[]), Some(4.0));
        assert!(!metrics.contains("garbage") && !metrics.contains("c"));
    }
}
