// SPDX-License-Identifier: Apache-2.0
pragma solidity =0.8.37;

import {AccessRoles} from "./AccessRoles.sol";
import {IPledgeRegistry} from "./interfaces/IPledgeRegistry.sol";

/// @title PledgeRegistry
/// @notice Records which financier each lot is pledged to, one at a time, so the same goods
/// cannot be pledged to two banks.
/// @dev A financier pledges or releases for itself; tracefin's operator (OPERATOR_ROLE, held by
/// the deployer) can do both on a financier's behalf. The deployer also holds
/// DEFAULT_ADMIN_ROLE.
contract PledgeRegistry is IPledgeRegistry, AccessRoles {
    /// @inheritdoc IPledgeRegistry
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    mapping(bytes32 lotKey => Pledge) private _pledges;

    /// @notice Deploys an empty registry; the deployer becomes admin and operator.
    constructor() {
        _grantRole(OPERATOR_ROLE, msg.sender);
    }

    /// @inheritdoc IPledgeRegistry
    function pledge(bytes32 lotKey, address financier, bytes32 evidence) external {
        if (financier == address(0)) revert ZeroFinancier();
        if (msg.sender != financier && !hasRole(OPERATOR_ROLE, msg.sender)) {
            revert NotFinancierOrOperator(msg.sender, financier);
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
