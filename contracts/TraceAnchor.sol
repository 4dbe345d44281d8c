// SPDX-License-Identifier: Apache-2.0
pragma solidity =0.8.37;

import {AccessRoles} from "./AccessRoles.sol";
import {ITraceAnchor} from "./interfaces/ITraceAnchor.sol";

/// @title TraceAnchor
/// @notice Anchors tracefin's global event log on chain, one Merkle root per batch of contiguous
/// log positions, so that anyone can check an event's inclusion without trusting tracefin.
/// @dev The chain enforces that the anchored log has no gaps, overlaps or rewrites: batches are
/// append-only and each must start where the previous one ended. The deployer holds
/// DEFAULT_ADMIN_ROLE and ANCHORER_ROLE.
contract TraceAnchor is ITraceAnchor, AccessRoles {
    /// @inheritdoc ITraceAnchor
    uint16 public constant VERSION = 1;

    /// @inheritdoc ITraceAnchor
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");

    /// @dev Batches by id; firstIndex is strictly increasing, so batchOf can binary-search it.
    Batch[] private _batches;

    /// @notice Deploys an empty anchor; the deployer becomes admin and anchorer.
    constructor() {
        _grantRole(ANCHORER_ROLE, msg.sender);
    }

    /// @inheritdoc ITraceAnchor
    function anchorBatch(uint64 firstIndex, uint32 count, bytes32 root)
        external
        onlyRole(ANCHORER_ROLE)
        returns (uint64 batchId)
    {
        uint64 expected = nextIndex();
        if (firstIndex != expected) revert UnexpectedFirstIndex(expected, firstIndex);
        if (count == 0) revert EmptyBatch();
        if (root == bytes32(0)) revert ZeroRoot();

        batchId = uint64(_batches.length);
        _batches.push(
            Batch({
                root: root,
                firstIndex: firstIndex,
                count: count,
                blockNumber: uint64(block.number),
                timestamp: uint64(block.timestamp)
            })
        );
        emit BatchAnchored(batchId, root, firstIndex, count);
    }

    /// @inheritdoc ITraceAnchor
    function batch(uint64 batchId) external view returns (Batch memory) {
        if (batchId >= _batches.length) revert UnknownBatch(batchId);
        return _batches[batchId];
    }

    /// @inheritdoc ITraceAnchor
    function batchCount() external view returns (uint64) {
        return uint64(_batches.length);
    }

    /// @inheritdoc ITraceAnchor
    /// @dev Derived from the last batch rather than stored, so it cannot disagree with it.
    /// Reverts with an arithmetic panic only past 2**64 - 1 positions.
    function nextIndex() public view returns (uint64) {
        uint256 length = _batches.length;
        if (length == 0) return 0;
        Batch storage last = _batches[length - 1];
        return last.firstIndex + last.count;
    }

    /// @inheritdoc ITraceAnchor
    function batchOf(uint64 position) external view returns (uint64 batchId) {
        uint64 next = nextIndex();
        if (position >= next) revert PositionNotAnchored(position, next);
        // Invariant: _batches[low].firstIndex <= position < _batches[high].firstIndex, with
        // high == length standing for nextIndex. Non-empty since position < next.
        uint256 low = 0;
        uint256 high = _batches.length;
        while (high - low > 1) {
            uint256 mid = (low + high) / 2;
            if (_batches[mid].firstIndex <= position) {
                low = mid;
            } else {
                high = mid;
            }
        }
        return uint64(low);
    }
}
