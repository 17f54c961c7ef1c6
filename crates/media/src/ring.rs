//! A bounded ring of items numbered by a monotonically increasing sequence
//! number. One ring per stream is shared by every subscriber; a subscriber is
//! only a sequence number (its cursor) into it.
//!
//! Pushing into a full ring evicts the oldest item: the publisher never waits.
//! A cursor older than [`SequencedRing::first_sequence`] was overrun and has
//! lost `first_sequence - cursor` items.

use std::collections::VecDeque;

/// Bounded FIFO whose items keep their sequence number for their whole life.
#[derive(Debug)]
pub(crate) struct SequencedRing<T> {
    items: VecDeque<T>,
    capacity: usize,
    /// Sequence number of `items[0]` (or of the next push when empty).
    first_sequence: u64,
}

impl<T> SequencedRing<T> {
    /// An empty ring holding at most `capacity` items (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            // Grows on demand: an idle stream does not reserve its full ring.
            items: VecDeque::new(),
            capacity: capacity.max(1),
            first_sequence: 0,
        }
    }

    /// The maximum number of items kept.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of items currently kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Sequence number of the oldest kept item.
    pub(crate) fn first_sequence(&self) -> u64 {
        self.first_sequence
    }

    /// Sequence number the next pushed item will get (one past the newest).
    pub(crate) fn end_sequence(&self) -> u64 {
        self.first_sequence + self.items.len() as u64
    }

    /// Appends `item`, evicting and returning the oldest item when full.
    pub(crate) fn push(&mut self, item: T) -> Option<T> {
        let evicted = if self.items.len() >= self.capacity {
            self.first_sequence += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        evicted
    }

    /// The item with sequence number `sequence`, if still kept.
    pub(crate) fn get(&self, sequence: u64) -> Option<&T> {
        let index = sequence.checked_sub(self.first_sequence)?;
        self.items.get(usize::try_from(index).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_ring_evicts_oldest_and_keeps_sequence_numbers() {
        let mut ring = SequencedRing::new(3);
        for value in 0..5 {
            ring.push(value);
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.first_sequence(), 2);
        assert_eq!(ring.end_sequence(), 5);
        assert_eq!(ring.get(1), None);
        assert_eq!(ring.get(2), Some(&2));
        assert_eq!(ring.get(4), Some(&4));
        assert_eq!(ring.get(5), None);
    }

    #[test]
    fn zero_capacity_is_raised_to_one() {
        let mut ring = SequencedRing::new(0);
        assert_eq!(ring.push('a'), None);
        assert_eq!(ring.push('b'), Some('a'));
        assert_eq!(ring.len(), 1);
    }
}
