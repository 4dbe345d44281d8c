// SPDX-License-Identifier: Apache-2.0
pragma solidity =0.8.37;

import {IAccessRoles} from "./interfaces/IAccessRoles.sol";

/// @title AccessRoles
/// @notice Minimal role-based access control: roles are bytes32 ids, all administered by
/// DEFAULT_ADMIN_ROLE.
/// @dev Self-written stand-in for OpenZeppelin's AccessControl (same error and event shapes),
/// without role-admin hierarchy or enumeration. The deployer becomes the first admin.
abstract contract AccessRoles is IAccessRoles {
    /// @inheritdoc IAccessRoles
    bytes32 public constant DEFAULT_ADMIN_ROLE = 0x00;

    mapping(bytes32 role => mapping(address account => bool)) private _members;

    /// @dev Reverts AccessControlUnauthorizedAccount unless the caller holds `role`.
    /// @param role The role the caller must hold.
    modifier onlyRole(bytes32 role) {
        _checkRole(role, msg.sender);
        _;
    }

    /// @notice Makes the deployer the first admin.
    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
    }

    /// @inheritdoc IAccessRoles
    function hasRole(bytes32 role, address account) public view returns (bool) {
        return _members[role][account];
    }

    /// @inheritdoc IAccessRoles
    function grantRole(bytes32 role, address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _grantRole(role, account);
    }

    /// @inheritdoc IAccessRoles
    function revokeRole(bytes32 role, address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _revokeRole(role, account);
    }

    /// @inheritdoc IAccessRoles
    function renounceRole(bytes32 role, address callerConfirmation) external {
        if (callerConfirmation != msg.sender) revert AccessControlBadConfirmation();
        _revokeRole(role, msg.sender);
    }

    /// @dev Reverts AccessControlUnauthorizedAccount unless `account` holds `role`.
    /// @param role The role needed.
    /// @param account The account to check.
    function _checkRole(bytes32 role, address account) internal view {
        if (!_members[role][account]) revert AccessControlUnauthorizedAccount(account, role);
    }

    /// @dev Grants `role` to `account` and emits RoleGranted, unless it already holds it.
    /// @param role The role to grant.
    /// @param account The account to grant it to.
    function _grantRole(bytes32 role, address account) internal {
        if (_members[role][account]) return;
        _members[role][account] = true;
        emit RoleGranted(role, account, msg.sender);
    }

    /// @dev Revokes `role` from `account` and emits RoleRevoked, if it holds it.
    /// @param role The role to revoke.
    /// @param account The account to revoke it from.
    function _revokeRole(bytes32 role, address account) internal {
        if (!_members[role][account]) return;
        _members[role][account] = false;
        emit RoleRevoked(role, account, msg.sender);
    }
}
