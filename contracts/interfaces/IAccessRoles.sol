// SPDX-License-Identifier: Apache-2.0
pragma solidity =0.8.37;

/// @title IAccessRoles
/// @notice Role-based access control shared by tracefin's contracts.
/// @dev A minimal, self-contained take on OpenZeppelin's IAccessControl: every role is
/// administered by DEFAULT_ADMIN_ROLE, and there is no role-admin hierarchy.
interface IAccessRoles {
    /// @notice Emitted when `account` is granted `role`.
    /// @param role The role granted.
    /// @param account The account that received the role.
    /// @param sender The admin that granted it.
    event RoleGranted(bytes32 indexed role, address indexed account, address indexed sender);

    /// @notice Emitted when `account` loses `role`, revoked by an admin or renounced.
    /// @param role The role removed.
    /// @param account The account that lost the role.
    /// @param sender The admin that revoked it, or `account` itself when renounced.
    event RoleRevoked(bytes32 indexed role, address indexed account, address indexed sender);

    /// @notice The caller lacks the role the function needs.
    /// @param account The caller.
    /// @param neededRole The role it would need.
    error AccessControlUnauthorizedAccount(address account, bytes32 neededRole);

    /// @notice `renounceRole` was called with a confirmation address other than the caller.
    error AccessControlBadConfirmation();

    /// @notice The role whose holders administer every role, this one included.
    /// @return The role id, zero.
    function DEFAULT_ADMIN_ROLE() external view returns (bytes32);

    /// @notice Whether `account` holds `role`.
    /// @param role The role to check.
    /// @param account The account to check.
    /// @return True if `account` holds `role`.
    function hasRole(bytes32 role, address account) external view returns (bool);

    /// @notice Grants `role` to `account`; a no-op (no event) if it already holds it.
    /// @dev Only DEFAULT_ADMIN_ROLE holders.
    /// @param role The role to grant.
    /// @param account The account to grant it to.
    function grantRole(bytes32 role, address account) external;

    /// @notice Revokes `role` from `account`; a no-op (no event) if it does not hold it.
    /// @dev Only DEFAULT_ADMIN_ROLE holders. Revoking the last admin leaves the contract without
    /// one, for good.
    /// @param role The role to revoke.
    /// @param account The account to revoke it from.
    function revokeRole(bytes32 role, address account) external;

    /// @notice Gives up a role the caller holds, e.g. a compromised key renouncing its powers.
    /// @param role The role to give up.
    /// @param callerConfirmation Must equal the caller, to guard against mistyped calls.
    function renounceRole(bytes32 role, address callerConfirmation) external;
}
