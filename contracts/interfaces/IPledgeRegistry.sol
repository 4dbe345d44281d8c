// SPDX-License-Identifier: Apache-2.0
pragma solidity =0.8.37;

/// @title IPledgeRegistry
/// @notice Public register of lots pledged as collateral: a lot can be pledged to one financier
/// at a time, so the same goods cannot back loans from two banks.
/// @dev A lot key is tracefin's 32-byte identifier of a lot (GTIN + lot number); the registry
/// does not interpret it.
interface IPledgeRegistry {
    /// @notice A lot's current pledge; all fields are zero when the lot is not pledged.
    /// @param financier The pledgee.
    /// @param evidence Hash of the evidence the pledge rests on (e.g. a batch root or event hash).
    /// @param pledgedAt Timestamp of the block that recorded the pledge.
    struct Pledge {
        address financier;
        bytes32 evidence;
        uint64 pledgedAt;
    }

    /// @notice Emitted when a lot is pledged.
    /// @param lotKey The lot.
    /// @param financier The pledgee.
    /// @param evidence Hash of the evidence the pledge rests on.
    event Pledged(bytes32 indexed lotKey, address indexed financier, bytes32 evidence);

    /// @notice Emitted when a pledge is released.
    /// @param lotKey The lot.
    /// @param financier The pledgee the lot was released by or for.
    /// @param releasedBy The caller: the pledgee or an operator.
    event Released(bytes32 indexed lotKey, address indexed financier, address releasedBy);

    /// @notice The lot is already pledged, to this or another financier.
    /// @param lotKey The lot.
    /// @param pledgee Its current pledgee.
    error AlreadyPledged(bytes32 lotKey, address pledgee);

    /// @notice The financier is the zero address.
    error ZeroFinancier();

    /// @notice The caller is neither the financier named in the pledge nor an operator.
    /// @param caller The caller.
    /// @param financier The financier named in the pledge.
    error NotFinancierOrOperator(address caller, address financier);

    /// @notice The caller pledges for itself but the admin has not registered it as a financier.
    /// @param caller The caller.
    error NotRegisteredFinancier(address caller);

    /// @notice The caller is neither the lot's pledgee nor an operator.
    /// @param lotKey The lot.
    /// @param caller The caller.
    error NotPledgee(bytes32 lotKey, address caller);

    /// @notice The lot is not pledged.
    /// @param lotKey The lot.
    error NotPledged(bytes32 lotKey);

    /// @notice The version of this contract's interface and rules; a deployment whose code is an
    /// older version is replaced (tracefin `chain deploy`), and its live pledges restored.
    /// @return 2: pledges only by the operator or by registered financiers.
    function VERSION() external view returns (uint16);

    /// @notice The role of financiers allowed to pledge for themselves.
    /// @return The role id, keccak256("FINANCIER_ROLE").
    function FINANCIER_ROLE() external view returns (bytes32);

    /// @notice The role allowed to pledge and release on anyone's behalf.
    /// @return The role id, keccak256("OPERATOR_ROLE").
    function OPERATOR_ROLE() external view returns (bytes32);

    /// @notice Pledges a lot to a financier.
    /// @dev Callable by an OPERATOR_ROLE holder, or by `financier` itself when it holds
    /// FINANCIER_ROLE. Reverts ZeroFinancier, NotFinancierOrOperator (another account's pledge),
    /// NotRegisteredFinancier (its own, unregistered), or AlreadyPledged if the lot is pledged to
    /// anyone (the same financier included). Emits Pledged.
    /// @param lotKey The lot.
    /// @param financier The pledgee.
    /// @param evidence Hash of the evidence the pledge rests on.
    function pledge(bytes32 lotKey, address financier, bytes32 evidence) external;

    /// @notice Releases a lot's pledge.
    /// @dev Callable by the current pledgee or an OPERATOR_ROLE holder. Reverts NotPledged or
    /// NotPledgee. Emits Released. The lot can be pledged again afterwards.
    /// @param lotKey The lot.
    function release(bytes32 lotKey) external;

    /// @notice Reads a lot's current pledge.
    /// @param lotKey The lot.
    /// @return The pledge, all zero if the lot is not pledged.
    function pledgeOf(bytes32 lotKey) external view returns (Pledge memory);

    /// @notice Whether a lot is currently pledged.
    /// @param lotKey The lot.
    /// @return True if the lot is pledged.
    function isPledged(bytes32 lotKey) external view returns (bool);
}
