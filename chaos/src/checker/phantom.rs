//! No phantom reads: every record read was written by the workload, and none whose every attempt
//! definitely failed.

use super::{Facts, PropertyResult};
use crate::history::{Outcome, parse_record_data};

pub(crate) fn check(facts: &Facts) -> PropertyResult {
    let mut result = PropertyResult::new(
        "no_phantom_reads",
        "every record read was put by a producer, and none whose puts all definitely failed",
    );
    for log in facts.all_reads() {
        for record in &log.records {
            let Some(id) = parse_record_data(&record.data) else {
                result.violation(format!(
                    "{} read {}/{}: {:?} is no record of this run",
                    log.reader, log.shard, record.sequence, record.data
                ));
                continue;
            };
            match facts.attempts.get(&id) {
                None => result.violation(format!(
                    "{} read {}/{}: producer {} never put record {}",
                    log.reader, log.shard, record.sequence, id.0, id.1
                )),
                Some(attempts)
                    if attempts
                        .iter()
                        .all(|op| matches!(op.outcome, Outcome::Failed { .. })) =>
                {
                    result.violation(format!(
                        "{} read {}/{}: producer {} record {} whose every put definitely failed ({:?})",
                        log.reader, log.shard, record.sequence, id.0, id.1, attempts[0].outcome
                    ))
                }
                Some(_) => {}
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::super::Facts;
    use super::super::tests::{clean_history, put, read, record};
    use super::check;
    use crate::history::Outcome;

    #[test]
    fn a_record_never_written_or_definitely_failed_is_caught() {
        let mut history = clean_history();
        history.puts.push(put(
            1,
            7,
            Outcome::Failed {
                code: "INVALID_ARGUMENT".into(),
                message: String::new(),
            },
        ));
        history
            .live_reads
            .push(read("live 2", "s1", vec![record(1, 1, 7), record(2, 5, 5)]));
        assert_eq!(check(&Facts::new(&history)).violations, 2);
    }
}
