// SPDX-License-Identifier: Apache-2.0
pragma solidity =0.8.37;

/// @title ITraceAnchor
/// @notice Append-only anchor of tracefin's global event log: each batch commits the RFC 6962
/// Merkle root of a contiguous range of log positions.
/// @dev Batches are numbered from 0 and cover [firstIndex, firstIndex + count) with no gaps,
/// overlaps or rewrites: a batch is accepted only if it starts at the next unanchored position.
interface ITraceAnchor {
    /// @notice One anchored batch.
    /// @param root RFC 6962 Merkle tree head of the batch's event hashes.
    /// @param firstIndex Log position of the batch's first event.
    /// @param count Number of events in the batch (its tree size), never zero.
    /// @param blockNumber Block in which the batch was anchored.
    /// @param timestamp Timestamp of that block, in seconds since the Unix epoch.
    struct Batch {
        bytes32 root;
        uint64 firstIndex;
        uint32 count;
        uint64 blockNumber;
        uint64 timestamp;
    }

    /// @notice Emitted when a batch is anchored. Off-chain verifiers read this log: its
    /// declaration is part of tracefin's public contract and never changes.
    /// @param batchId Sequential id of the new batch, from 0.
    /// @param root Merkle root of the batch.
    /// @param firstIndex Log position of the batch's first event.
    /// @param count Number of events in the batch.
    event BatchAnchored(uint64 indexed batchId, bytes32 indexed root, uint64 firstIndex, uint32 count);

    /// @notice The batch does not start at the next unanchored log position.
    /// @param expected The next unanchored position, `nextIndex()`.
    /// @param given The `firstIndex` passed.
    error UnexpectedFirstIndex(uint64 expected, uint64 given);

    /// @notice The batch has no events.
    error EmptyBatch();

    /// @notice The batch root is zero, which no Merkle tree head can be.
    error ZeroRoot();

    /// @notice No batch has this id yet.
    /// @param batchId The id asked for.
    error UnknownBatch(uint64 batchId);

    /// @notice The log position is not covered by any anchored batch yet.
    /// @param position The position asked for.
    /// @param nextIndex The first unanchored position; every position below it is anchored.
    error PositionNotAnchored(uint64 position, uint64 nextIndex);

    /// @notice The role allowed to anchor batches.
    /// @return The role id, keccak256("ANCHORER_ROLE").
    function ANCHORER_ROLE() external view returns (bytes32);

    /// @notice The version of this contract's interface and rules; a deployment whose code differs
    /// from the current build is replaced (tracefin `chain deploy`).
    /// @return 1: the first versioned TraceAnchor (rules unchanged since the first deployment).
    function VERSION() external view returns (uint16);

    /// @notice Anchors the batch covering log positions [firstIndex, firstIndex + count).
    /// @dev Only ANCHORER_ROLE holders. Reverts UnexpectedFirstIndex unless
    /// `firstIndex == nextIndex()`, EmptyBatch if `count == 0`, ZeroRoot if `root == 0`.
    /// Emits BatchAnchored.
    /// @param firstIndex Log position of the batch's first event; must equal `nextIndex()`.
    /// @param count Number of events in the batch.
    /// @param root RFC 6962 Merkle tree head of the batch.
    /// @return batchId Id of the new batch, equal to `batchCount()` before the call.
    function anchorBatch(uint64 firstIndex, uint32 count, bytes32 root) external returns (uint64 batchId);

    /// @notice Reads an anchored batch.
    /// @dev Reverts UnknownBatch if `batchId >= batchCount()`.
    /// @param batchId The batch id.
    /// @return The batch.
    function batch(uint64 batchId) external view returns (Batch memory);

    /// @notice Number of anchored batches; also the id the next batch will get.
    /// @return The number of batches.
    function batchCount() external view returns (uint64);

    /// @notice First log position not yet anchored; positions below it are all anchored.
    /// @return The next position a batch must start at.
    function nextIndex() external view returns (uint64);

    /// @notice Finds the batch that covers a log position, by binary search.
    /// @dev Reverts PositionNotAnchored if `position >= nextIndex()`.
    /// @param position A log position.
    /// @return batchId The id of the batch whose range contains `position`.
    function batchOf(uint64 position) external view returns (uint64 batchId);
}
