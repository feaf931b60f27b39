//! Resharding in the catalogue: SplitShard, MergeShards and UpdateShardCount, as pure functions of
//! the state (they run inside the metadata apply). A reshard closes parents and opens children at
//! once, so puts route to the children from the commit on; the stream is UPDATING until the stream
//! driver has sealed every parent's Raft group (fixing its ending sequence number) and every
//! child has a leader.
//!
//! UpdateShardCount follows Kinesis' uniform scaling: to grow, every open shard is halved; then
//! the adjacent pair with the smallest combined range is merged, repeatedly, until the target is
//! reached. Shards that are created and merged again within the same operation never open: they
//! are listed (closed, with parents and children, as Kinesis lists them) but get no Raft group.

use tributary_types::{
    Error, GroupId, HashKeyRange, MAX_SHARDS_PER_STREAM, NodeId, SequenceNumber, ShardId,
    StreamName,
};

use super::placement;
use super::state::{MetaState, ShardMeta, ShardStatus, StreamStatus};

/// UpdateShardCount runs at most this often per rolling period (Kinesis: 10 per 24 hours).
const MAX_SCALINGS_PER_PERIOD: usize = 10;
const SCALING_PERIOD_MS: u64 = 24 * 3600 * 1000;

impl MetaState {
    pub(super) fn split_shard(
        &mut self,
        name: &StreamName,
        shard_id: ShardId,
        new_starting_hash_key: u128,
        at_ms: u64,
        down_nodes: &[NodeId],
    ) -> Result<(), Error> {
        let stream = self.stream(name)?;
        stream.require_active("SplitShard")?;
        let parent = open_shard(stream, shard_id)?;
        let range = parent.hash_range;
        // Kinesis: the new key must lie strictly inside the range, leaving both children a key.
        if new_starting_hash_key <= range.start_inclusive.saturating_add(1)
            || new_starting_hash_key >= range.end_inclusive
        {
            return Err(Error::invalid_argument(format!(
                "NewStartingHashKey {new_starting_hash_key} must lie strictly inside the range of {shard_id} \
                 ({}..{}), leaving each child at least two hash keys",
                range.start_inclusive, range.end_inclusive
            )));
        }
        check_shard_quota(stream.shards.len(), 2)?;
        let children = [
            HashKeyRange {
                start_inclusive: range.start_inclusive,
                end_inclusive: new_starting_hash_key - 1,
            },
            HashKeyRange {
                start_inclusive: new_starting_hash_key,
                end_inclusive: range.end_inclusive,
            },
        ];
        let mut plan = Plan::default();
        plan.close(shard_id);
        for range in children {
            plan.open(range, Some(Source::Existing(shard_id)), None);
        }
        self.carry_out(name, plan, at_ms, down_nodes)
    }

    pub(super) fn merge_shards(
        &mut self,
        name: &StreamName,
        shard_id: ShardId,
        adjacent_id: ShardId,
        at_ms: u64,
        down_nodes: &[NodeId],
    ) -> Result<(), Error> {
        let stream = self.stream(name)?;
        stream.require_active("MergeShards")?;
        let first = open_shard(stream, shard_id)?;
        let second = open_shard(stream, adjacent_id)?;
        let (low, high) = if first.hash_range.start_inclusive < second.hash_range.start_inclusive {
            (first, second)
        } else {
            (second, first)
        };
        if low.hash_range.end_inclusive.checked_add(1) != Some(high.hash_range.start_inclusive) {
            return Err(Error::invalid_argument(format!(
                "Shards {shard_id} and {adjacent_id} in stream {name} are not an adjacent pair of shards eligible for merging"
            )));
        }
        check_shard_quota(stream.shards.len(), 1)?;
        let range = HashKeyRange {
            start_inclusive: low.hash_range.start_inclusive,
            end_inclusive: high.hash_range.end_inclusive,
        };
        let mut plan = Plan::default();
        plan.close(shard_id);
        plan.close(adjacent_id);
        plan.open(
            range,
            Some(Source::Existing(shard_id)),
            Some(Source::Existing(adjacent_id)),
        );
        self.carry_out(name, plan, at_ms, down_nodes)
    }

    pub(super) fn update_shard_count(
        &mut self,
        name: &StreamName,
        target: u32,
        at_ms: u64,
        down_nodes: &[NodeId],
    ) -> Result<(), Error> {
        let stream = self.stream(name)?;
        stream.require_active("UpdateShardCount")?;
        let mut open: Vec<&ShardMeta> = stream
            .shards
            .iter()
            .filter(|shard| shard.status == ShardStatus::Open)
            .collect();
        open.sort_by_key(|shard| shard.hash_range.start_inclusive);
        let current = open.len() as u32;
        if target == current {
            return Err(Error::invalid_argument(format!(
                "Stream {name} already has {current} open shards"
            )));
        }
        if target == 0 || target > MAX_SHARDS_PER_STREAM || target > 2 * current {
            return Err(Error::invalid_argument(format!(
                "TargetShardCount {target} is outside [{}, {}]: a scaling at most doubles or halves the {current} open shards",
                current.div_ceil(2),
                (2 * current).min(MAX_SHARDS_PER_STREAM)
            )));
        }
        if target * 2 < current {
            return Err(Error::invalid_argument(format!(
                "TargetShardCount {target} is below half of the {current} open shards"
            )));
        }
        let recent: Vec<u64> = stream
            .scalings_ms
            .iter()
            .copied()
            .filter(|t| t + SCALING_PERIOD_MS > at_ms)
            .collect();
        if recent.len() >= MAX_SCALINGS_PER_PERIOD {
            return Err(Error::new(
                tributary_types::ErrorCode::LimitExceeded,
                format!(
                    "Stream {name} was scaled {MAX_SCALINGS_PER_PERIOD} times in the last 24 hours, the most allowed"
                ),
            ));
        }
        let mut plan = Plan::default();
        let mut pieces: Vec<Piece> = open
            .iter()
            .map(|shard| Piece {
                range: shard.hash_range,
                source: Source::Existing(shard.shard_id),
            })
            .collect();
        if target > current {
            let mut halves = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let parent = plan.close_piece(&piece);
                let range = piece.range;
                let middle =
                    range.start_inclusive + (range.end_inclusive - range.start_inclusive) / 2 + 1;
                if middle <= range.start_inclusive.saturating_add(1)
                    || middle >= range.end_inclusive
                {
                    return Err(Error::invalid_argument(format!(
                        "A shard of stream {name} is too narrow to halve"
                    )));
                }
                for half in [
                    HashKeyRange {
                        start_inclusive: range.start_inclusive,
                        end_inclusive: middle - 1,
                    },
                    HashKeyRange {
                        start_inclusive: middle,
                        end_inclusive: range.end_inclusive,
                    },
                ] {
                    let index = plan.open(half, Some(parent), None);
                    halves.push(Piece {
                        range: half,
                        source: Source::Planned(index),
                    });
                }
            }
            pieces = halves;
        }
        while pieces.len() > target as usize {
            let position = (0..pieces.len() - 1)
                .min_by_key(|&i| {
                    let width = |p: &Piece| p.range.end_inclusive - p.range.start_inclusive;
                    (width(&pieces[i]).saturating_add(width(&pieces[i + 1])), i)
                })
                .expect("at least two pieces");
            let high = pieces.remove(position + 1);
            let low = pieces.remove(position);
            let parent = plan.close_piece(&low);
            let adjacent = plan.close_piece(&high);
            let range = HashKeyRange {
                start_inclusive: low.range.start_inclusive,
                end_inclusive: high.range.end_inclusive,
            };
            let index = plan.open(range, Some(parent), Some(adjacent));
            pieces.insert(
                position,
                Piece {
                    range,
                    source: Source::Planned(index),
                },
            );
        }
        check_shard_quota(stream.shards.len(), plan.new_shards.len())?;
        self.carry_out(name, plan, at_ms, down_nodes)?;
        let stream = self.stream_mut(name)?;
        stream.scalings_ms = recent;
        stream.scalings_ms.push(at_ms);
        Ok(())
    }

    /// Records the ending sequence number of a closed shard whose group has been sealed.
    pub(super) fn seal_shard(
        &mut self,
        name: &StreamName,
        shard_id: ShardId,
        ending: SequenceNumber,
    ) -> Result<(), Error> {
        let stream = self.stream_mut(name)?;
        let shard = stream
            .shards
            .iter_mut()
            .find(|shard| shard.shard_id == shard_id)
            .ok_or_else(|| {
                Error::not_found(format!("Shard {shard_id} in stream {name} does not exist"))
            })?;
        if shard.status != ShardStatus::Closed {
            return Err(Error::invalid_argument(format!(
                "Shard {shard_id} is open; only closed shards are sealed"
            )));
        }
        shard.ending_sequence_number_opt.get_or_insert(ending);
        Ok(())
    }

    /// Applies a plan: closes parents, creates children (the ones still open at the end get Raft
    /// groups and replicas), and marks the stream UPDATING.
    fn carry_out(
        &mut self,
        name: &StreamName,
        plan: Plan,
        at_ms: u64,
        down_nodes: &[NodeId],
    ) -> Result<(), Error> {
        let opened: Vec<usize> = (0..plan.new_shards.len())
            .filter(|index| !plan.closed_planned.contains(index))
            .collect();
        let mut replica_sets =
            placement::place_shards(self, opened.len() as u32, down_nodes)?.into_iter();
        let first_index = self.stream(name)?.next_shard_index;
        let mut next_group = self.next_group;
        let mut created = Vec::with_capacity(plan.new_shards.len());
        for (index, new) in plan.new_shards.iter().enumerate() {
            let shard_id = ShardId(first_index + index as u32);
            let resolve = |parent: Option<Source>| {
                parent.map(|source| match source {
                    Source::Existing(id) => id,
                    Source::Planned(i) => ShardId(first_index + i as u32),
                })
            };
            let born_closed = plan.closed_planned.contains(&index);
            let (group, replicas) = if born_closed {
                // Never opened: no Raft group (see the module docs).
                (GroupId(0), Vec::new())
            } else {
                let group = GroupId(next_group);
                next_group += 1;
                (group, replica_sets.next().unwrap_or_default())
            };
            created.push(ShardMeta {
                shard_id,
                group,
                hash_range: new.range,
                parent_opt: resolve(new.parent),
                adjacent_parent_opt: resolve(new.adjacent),
                status: if born_closed {
                    ShardStatus::Closed
                } else {
                    ShardStatus::Open
                },
                replicas,
                ending_sequence_number_opt: born_closed
                    .then(|| SequenceNumber::shard_start(shard_id)),
                created_at_ms: at_ms,
                closed_at_ms_opt: born_closed.then_some(at_ms),
                move_opt: None,
            });
        }
        self.next_group = next_group;
        let stream = self.stream_mut(name)?;
        for shard in stream.shards.iter_mut() {
            if plan.closed_existing.contains(&shard.shard_id) {
                shard.status = ShardStatus::Closed;
                shard.closed_at_ms_opt = Some(at_ms);
            }
        }
        stream.next_shard_index = first_index + created.len() as u32;
        stream.shards.extend(created);
        stream.status = StreamStatus::Updating;
        Ok(())
    }
}

fn open_shard(stream: &super::StreamMeta, shard_id: ShardId) -> Result<&ShardMeta, Error> {
    let shard = stream.shard(shard_id).ok_or_else(|| {
        Error::not_found(format!(
            "Shard {shard_id} in stream {} does not exist",
            stream.name
        ))
    })?;
    if shard.status != ShardStatus::Open {
        return Err(Error::invalid_argument(format!(
            "Shard {shard_id} in stream {} has already been merged or split, and thus is not eligible for merging or splitting",
            stream.name
        )));
    }
    Ok(shard)
}

fn check_shard_quota(existing: usize, adding: usize) -> Result<(), Error> {
    // Closed shards count until they expire: their groups still hold data.
    let limit = MAX_SHARDS_PER_STREAM as usize * 4;
    if existing + adding > limit {
        return Err(Error::new(
            tributary_types::ErrorCode::LimitExceeded,
            format!(
                "A stream holds at most {limit} shards, open and closed; this reshard would make {}",
                existing + adding
            ),
        ));
    }
    Ok(())
}

/// Where a piece of the key space comes from: a shard of the stream, or one created earlier in
/// the same operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Existing(ShardId),
    Planned(usize),
}

struct Piece {
    range: HashKeyRange,
    source: Source,
}

struct NewShard {
    range: HashKeyRange,
    parent: Option<Source>,
    adjacent: Option<Source>,
}

#[derive(Default)]
struct Plan {
    closed_existing: Vec<ShardId>,
    closed_planned: Vec<usize>,
    new_shards: Vec<NewShard>,
}

impl Plan {
    fn close(&mut self, shard: ShardId) {
        self.closed_existing.push(shard);
    }

    fn close_piece(&mut self, piece: &Piece) -> Source {
        match piece.source {
            Source::Existing(id) => self.closed_existing.push(id),
            Source::Planned(index) => self.closed_planned.push(index),
        }
        piece.source
    }

    fn open(
        &mut self,
        range: HashKeyRange,
        parent: Option<Source>,
        adjacent: Option<Source>,
    ) -> usize {
        self.new_shards.push(NewShard {
            range,
            parent,
            adjacent,
        });
        self.new_shards.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use tributary_raft::meta::MetaCommand;
    use tributary_types::{ErrorCode, StreamMode};

    use super::*;

    fn state_with(shards: u32) -> MetaState {
        let mut state = MetaState::default();
        for (id, az) in [(1, "a"), (2, "b"), (3, "c")] {
            let register = MetaCommand::RegisterNode {
                node_id: id,
                az: az.into(),
                address: String::new(),
            };
            state.apply(&register).unwrap();
        }
        let create = MetaCommand::CreateStream {
            name: name(),
            shard_count: shards,
            retention_hours: 24,
            created_at_ms: 1,
            down_nodes: Vec::new(),
            mode: StreamMode::Provisioned,
            tags: Vec::new(),
        };
        state.apply(&create).unwrap();
        activate(&mut state);
        state
    }

    fn name() -> StreamName {
        "s".parse().unwrap()
    }

    fn activate(state: &mut MetaState) {
        state
            .apply(&MetaCommand::ActivateStream { name: name() })
            .unwrap();
    }

    fn open_ranges(state: &MetaState) -> Vec<HashKeyRange> {
        let mut ranges: Vec<HashKeyRange> = state
            .stream(&name())
            .unwrap()
            .shards
            .iter()
            .filter(|s| s.status == ShardStatus::Open)
            .map(|s| s.hash_range)
            .collect();
        ranges.sort_by_key(|r| r.start_inclusive);
        ranges
    }

    /// Open shards tile the whole key space, without gaps or overlaps.
    fn assert_tiles(state: &MetaState) {
        let ranges = open_ranges(state);
        assert_eq!(ranges.first().unwrap().start_inclusive, 0);
        assert_eq!(ranges.last().unwrap().end_inclusive, u128::MAX);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end_inclusive + 1, pair[1].start_inclusive);
        }
    }

    #[test]
    fn split_closes_the_parent_and_opens_two_children_with_new_ids() {
        let mut state = state_with(2);
        let start = state.stream(&name()).unwrap().shards[0].hash_range;
        let middle = start.end_inclusive / 2;
        let split = MetaCommand::SplitShard {
            name: name(),
            shard: ShardId(0),
            new_starting_hash_key: middle,
            at_ms: 50,
            down_nodes: Vec::new(),
            by_scaler: false,
        };
        state.apply(&split).unwrap();
        let stream = state.stream(&name()).unwrap();
        assert_eq!(stream.status, StreamStatus::Updating);
        let parent = stream.shard(ShardId(0)).unwrap();
        assert_eq!(parent.status, ShardStatus::Closed);
        assert_eq!(parent.closed_at_ms_opt, Some(50));
        let children: Vec<&ShardMeta> = stream
            .shards
            .iter()
            .filter(|s| s.parent_opt == Some(ShardId(0)))
            .collect();
        assert_eq!(
            children.iter().map(|c| c.shard_id).collect::<Vec<_>>(),
            [ShardId(2), ShardId(3)]
        );
        assert_eq!(children[0].hash_range.end_inclusive, middle - 1);
        assert_eq!(children[1].hash_range.start_inclusive, middle);
        assert!(
            children
                .iter()
                .all(|c| c.replicas.len() == 3 && c.group.0 >= 3)
        );
        assert_tiles(&state);

        assert_eq!(
            state.apply(&split).unwrap_err().code,
            ErrorCode::ResourceInUse,
            "UPDATING streams refuse reshards"
        );
        activate(&mut state);
        assert_eq!(
            state.apply(&split).unwrap_err().code,
            ErrorCode::InvalidArgument,
            "a closed shard cannot be split again"
        );
        let outside = MetaCommand::SplitShard {
            name: name(),
            shard: ShardId(1),
            new_starting_hash_key: 5,
            at_ms: 60,
            down_nodes: Vec::new(),
            by_scaler: false,
        };
        assert_eq!(
            state.apply(&outside).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn merge_needs_adjacent_open_shards() {
        let mut state = state_with(3);
        let merge = |a, b| MetaCommand::MergeShards {
            name: name(),
            shard: ShardId(a),
            adjacent_shard: ShardId(b),
            at_ms: 70,
            down_nodes: Vec::new(),
            by_scaler: false,
        };
        assert_eq!(
            state.apply(&merge(0, 2)).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        state.apply(&merge(2, 1)).unwrap();
        let child = state
            .stream(&name())
            .unwrap()
            .shard(ShardId(3))
            .unwrap()
            .clone();
        assert_eq!(child.parent_opt, Some(ShardId(2)));
        assert_eq!(child.adjacent_parent_opt, Some(ShardId(1)));
        assert_eq!(child.hash_range.end_inclusive, u128::MAX);
        assert_tiles(&state);
    }

    #[test]
    fn uniform_scaling_matches_kinesis_shard_totals() {
        // Totals (open + closed) AWS produced, as recorded by moto's tests (10 -> 3 is also
        // recorded there, but is below the documented half and refused here).
        for (initial, target, total) in [(2, 4, 6), (4, 5, 15), (10, 13, 37), (4, 2, 6), (5, 3, 7)]
        {
            let mut state = state_with(initial);
            let scale = MetaCommand::UpdateShardCount {
                name: name(),
                target,
                at_ms: 80,
                down_nodes: Vec::new(),
            };
            state
                .apply(&scale)
                .unwrap_or_else(|e| panic!("{initial} -> {target}: {e}"));
            let stream = state.stream(&name()).unwrap();
            assert_eq!(stream.shards.len(), total, "{initial} -> {target}");
            assert_eq!(
                stream.open_shard_count(),
                target as usize,
                "{initial} -> {target}"
            );
            assert_tiles(&state);
            for shard in stream.shards.iter().filter(|s| s.created_at_ms == 80) {
                let opened = shard.status == ShardStatus::Open;
                assert_eq!(
                    opened,
                    !shard.replicas.is_empty(),
                    "only open children get groups: {shard:?}"
                );
            }
        }
    }

    #[test]
    fn doubling_a_uniform_stream_gives_exact_eighths() {
        let mut state = state_with(4);
        let scale = MetaCommand::UpdateShardCount {
            name: name(),
            target: 8,
            at_ms: 80,
            down_nodes: Vec::new(),
        };
        state.apply(&scale).unwrap();
        assert_eq!(open_ranges(&state), HashKeyRange::split_evenly(8));
    }

    #[test]
    fn on_demand_streams_are_resharded_by_the_scaler_alone() {
        let mut state = state_with(4);
        state
            .apply(&MetaCommand::UpdateStreamMode {
                name: name(),
                mode: StreamMode::OnDemand,
            })
            .unwrap();
        let split = |by_scaler| MetaCommand::SplitShard {
            name: name(),
            shard: ShardId(0),
            new_starting_hash_key: 1 << 100,
            at_ms: 5,
            down_nodes: Vec::new(),
            by_scaler,
        };
        assert_eq!(
            state.apply(&split(false)).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let scale = MetaCommand::UpdateShardCount {
            name: name(),
            target: 5,
            at_ms: 5,
            down_nodes: Vec::new(),
        };
        assert_eq!(
            state.apply(&scale).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        state.apply(&split(true)).unwrap();
    }

    #[test]
    fn ten_scalings_a_day_at_most() {
        let mut state = state_with(2);
        let day = SCALING_PERIOD_MS;
        let scale = |target, at_ms| MetaCommand::UpdateShardCount {
            name: name(),
            target,
            at_ms,
            down_nodes: Vec::new(),
        };
        for i in 0..10u64 {
            let target = if i % 2 == 0 { 4 } else { 2 };
            state.apply(&scale(target, 100 + i)).unwrap();
            activate(&mut state);
        }
        assert_eq!(
            state.apply(&scale(4, 200)).unwrap_err().code,
            ErrorCode::LimitExceeded
        );
        state.apply(&scale(4, 100 + day)).unwrap();
    }

    #[test]
    fn scaling_is_bounded_by_half_and_double() {
        let mut state = state_with(4);
        for target in [0, 1, 4, 9] {
            let scale = MetaCommand::UpdateShardCount {
                name: name(),
                target,
                at_ms: 80,
                down_nodes: Vec::new(),
            };
            assert_eq!(
                state.apply(&scale).unwrap_err().code,
                ErrorCode::InvalidArgument,
                "{target}"
            );
        }
    }
}
