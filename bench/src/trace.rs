//! Transaction traces: the CSV formats the bench reads, and synthetic uniform load.
//!
//! Two formats, told apart by the header line:
//! - simple: `from,to,amount[,timestamp]` (timestamp in seconds, optional);
//! - the Ethereum mainnet export in `../shared/traces/`: `block_number,timestamp,tx_index,from,
//!   to,value_wei,is_plain_transfer` (contract creations, with an empty `to`, are skipped).
//!
//! A malformed row is an error naming the file, line and column; nothing is guessed.

use std::path::Path;

/// One transfer of a trace, with addresses as the trace spells them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceTx {
    /// Sender address.
    pub from: String,
    /// Receiver address.
    pub to: String,
    /// Amount in the trace's unit.
    pub amount: u128,
    /// Seconds since the first transaction of the trace (0 when the trace has no times).
    pub at_s: u64,
}

/// A loaded trace.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Transfers in trace order.
    pub txs: Vec<TraceTx>,
    /// Rows skipped (contract creations), with the reason.
    pub skipped: Vec<(usize, &'static str)>,
}

/// Why a trace could not be read.
#[derive(Debug)]
pub struct TraceError(pub String);

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

enum Format {
    Simple { has_ts: bool },
    Ethereum,
}

/// Read a trace file.
pub fn load(path: &Path) -> Result<Trace, TraceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TraceError(format!("cannot read trace {}: {e}", path.display())))?;
    parse(&text).map_err(|e| TraceError(format!("{}: {}", path.display(), e.0)))
}

/// Parse trace text.
pub fn parse(text: &str) -> Result<Trace, TraceError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| TraceError("empty trace (no header line)".into()))?;
    let cols: Vec<&str> = header.split(',').map(|c| c.trim()).collect();
    let format = match cols.as_slice() {
        ["from", "to", "amount"] => Format::Simple { has_ts: false },
        ["from", "to", "amount", "timestamp"] => Format::Simple { has_ts: true },
        ["block_number", "timestamp", "tx_index", "from", "to", "value_wei", "is_plain_transfer"] => Format::Ethereum,
        _ => {
            return Err(TraceError(format!(
                "line 1: unknown header `{header}`: expected `from,to,amount[,timestamp]` or the Ethereum \
                 export's `block_number,timestamp,tx_index,from,to,value_wei,is_plain_transfer`"
            )))
        }
    };
    let mut txs = vec![];
    let mut skipped = vec![];
    let mut t0: Option<u64> = None;
    for (i, line) in lines {
        let n = i + 1;
        let f: Vec<&str> = line.split(',').map(|c| c.trim()).collect();
        let want = match format {
            Format::Simple { has_ts } => 3 + has_ts as usize,
            Format::Ethereum => 7,
        };
        if f.len() != want {
            return Err(TraceError(format!(
                "line {n}: {} columns, expected {want}",
                f.len()
            )));
        }
        let num = |s: &str, col: &str| -> Result<u128, TraceError> {
            s.parse::<u128>()
                .map_err(|_| TraceError(format!("line {n}: column `{col}` is not a number: `{s}`")))
        };
        let (from, to, amount, ts) = match format {
            Format::Simple { has_ts } => {
                let ts = if has_ts {
                    Some(num(f[3], "timestamp")? as u64)
                } else {
                    None
                };
                (f[0], f[1], num(f[2], "amount")?, ts)
            }
            Format::Ethereum => (
                f[3],
                f[4],
                num(f[5], "value_wei")?,
                Some(num(f[1], "timestamp")? as u64),
            ),
        };
        if from.is_empty() {
            return Err(TraceError(format!("line {n}: empty `from`")));
        }
        if to.is_empty() {
            skipped.push((n, "contract creation (no receiver)"));
            continue;
        }
        let at_s = match ts {
            Some(t) => {
                let base = *t0.get_or_insert(t);
                if t < base {
                    return Err(TraceError(format!(
                        "line {n}: timestamp {t} goes back before {base}"
                    )));
                }
                t - base
            }
            None => 0,
        };
        txs.push(TraceTx {
            from: from.to_string(),
            to: to.to_string(),
            amount,
            at_s,
        });
    }
    if txs.is_empty() {
        return Err(TraceError("the trace has no transfers".into()));
    }
    Ok(Trace { txs, skipped })
}

/// Uniform synthetic load: `count` transfers between `accounts` distinct addresses, every
/// sender equally likely (a deterministic pseudo-random sequence).
pub fn uniform(count: usize, accounts: usize) -> Trace {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let txs = (0..count)
        .map(|_| {
            let a = next() as usize % accounts;
            let b = next() as usize % accounts;
            TraceTx {
                from: format!("u{a}"),
                to: format!("u{b}"),
                amount: 1 + next() as u128 % 1000,
                at_s: 0,
            }
        })
        .collect();
    Trace {
        txs,
        skipped: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_parse_and_contract_creations_are_skipped() {
        let t = parse("from,to,amount\na,b,5\nb,c,6\n").unwrap();
        assert_eq!(t.txs.len(), 2);
        let e = parse(
            "block_number,timestamp,tx_index,from,to,value_wei,is_plain_transfer\n\
             1,100,0,0xa,0xb,7,1\n1,100,1,0xa,,0,0\n2,103,0,0xc,0xa,8,1\n",
        )
        .unwrap();
        assert_eq!(e.txs.iter().map(|t| t.at_s).collect::<Vec<_>>(), vec![0, 3]);
        assert_eq!(e.skipped, vec![(3, "contract creation (no receiver)")]);
    }

    #[test]
    fn bad_traces_name_the_line() {
        assert!(parse("").unwrap_err().0.contains("empty"));
        assert!(parse("x,y\n").unwrap_err().0.contains("unknown header"));
        assert!(parse("from,to,amount\na,b,notanumber\n")
            .unwrap_err()
            .0
            .contains("line 2"));
        assert!(parse("from,to,amount\na,b\n")
            .unwrap_err()
            .0
            .contains("line 2: 2 columns"));
        assert!(parse("from,to,amount\n")
            .unwrap_err()
            .0
            .contains("no transfers"));
    }

    #[test]
    fn the_shipped_ethereum_trace_loads() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../traces/ethereum-mainnet-2015-11.csv");
        let t = load(&path).unwrap();
        assert!(t.txs.len() > 20_000, "{} transfers", t.txs.len());
        assert_eq!(t.txs.len() + t.skipped.len(), 28_426);
    }
}
