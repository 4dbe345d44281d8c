// SPDX-License-Identifier: Apache-2.0
pragma solidity =0.8.37;

import {AccessRoles} from "./AccessRoles.sol";
import {IPledgeRegistry} from "./interfaces/IPledgeRegistry.sol";

/// @title PledgeRegistry
/// @notice Records which financier each lot is pledged to, one at a time, so the same goods
/// cannot be pledged to two banks.
/// @dev Only tracefin's operator (OPERATOR_ROLE, held by the deployer) pledges on a financier's
/// behalf; a financier the admin registered (FINANCIER_ROLE) may also pledge for itself. Anyone
/// else is refused: lot keys are predictable (keccak of the lot URI), so an open registry would
/// let any account squat the goods a bank is about to take as collateral. The pledgee or the
/// operator releases; the operator's release is how a stale or squatted key is cleared. The
/// deployer also holds DEFAULT_ADMIN_ROLE.
contract PledgeRegistry is IPledgeRegistry, AccessRoles {
    /// @inheritdoc IPledgeRegistry
    uint16 public constant VERSION = 2;

    /// @inheritdoc IPledgeRegistry
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    /// @inheritdoc IPledgeRegistry
    bytes32 public constant FINANCIER_ROLE = keccak256("FINANCIER_ROLE");

    mapping(bytes32 lotKey => Pledge) private _pledges;

    /// @notice Deploys an empty registry; the deployer becomes admin and operator.
    constructor() {
        _grantRole(OPERATOR_ROLE, msg.sender);
    }

    /// @inheritdoc IPledgeRegistry
    function pledge(bytes32 lotKey, address financier, bytes32 evidence) external {
        if (financier == address(0)) revert ZeroFinancier();
        if (!hasRole(OPERATOR_ROLE, msg.sender)) {
            if (msg.sender != financier) revert NotFinancierOrOperator(msg.sender, financier);
            if (!hasRole(FINANCIER_ROLE, msg.sender)) revert NotRegisteredFinancier(msg.sender);
        }
        address pledgee = _pledges[lotKey].financier;
        if (pledgee != address(0)) revert AlreadyPledged(lotKey, pledgee);

        _pledges[lotKey] =
            Pledge({financier: financier, evidence: evidence, pledgedAt: uint64(block.timestamp)});
        emit Pledged(lotKey, financier, evidence);
    }

    /// @inheritdoc IPledgeRegistry
    function release(bytes32 lotKey) external {
        address pledgee = _pledges[lotKey].financier;
        if (pledgee == address(0)) revert NotPledged(lotKey);
        if (msg.sender != pledgee && !hasRole(OPERATOR_ROLE, msg.sender)) {
            revert NotPledgee(lotKey, msg.sender);
        }

        delete _pledges[lotKey];
        emit Released(lotKey, pledgee, msg.sender);
    }

    /// @inheritdoc IPledgeRegistry
    function pledgeOf(bytes32 lotKey) external view returns (Pledge memory) {
        return _pledges[lotKey];
    }

    /// @inheritdoc IPledgeRegistry
    function isPledged(bytes32 lotKey) external view returns (bool) {
        return _pledges[lotKey].financier != address(0);
    }
}
