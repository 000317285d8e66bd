//! Who may do what to which resource. The server authenticates the caller;
//! these rules decide, per resource, what that caller may see and change.

use uuid::Uuid;

use crate::order::{Actor, OrderStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Customer,
    RestaurantStaff,
    Driver,
    Support,
    Admin,
}

names!(Role {
    Customer => "customer",
    RestaurantStaff => "restaurant_staff",
    Driver => "driver",
    Support => "support",
    Admin => "admin",
});

/// An authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub role: Role,
    /// The restaurant a staff member works for.
    pub restaurant_id: Option<Uuid>,
}

/// The parties of one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderParties {
    pub customer_id: Uuid,
    pub restaurant_id: Uuid,
    pub driver_id: Option<Uuid>,
}

impl Principal {
    /// As whom the state machine sees this caller.
    pub fn actor(&self) -> Actor {
        match self.role {
            Role::Customer => Actor::Customer,
            Role::RestaurantStaff => Actor::Restaurant,
            Role::Driver => Actor::Driver,
            Role::Support => Actor::Support,
            Role::Admin => Actor::Admin,
        }
    }

    /// Support and admins see every order.
    pub fn is_operator(&self) -> bool {
        matches!(self.role, Role::Support | Role::Admin)
    }

    /// Staff of this restaurant, or an operator.
    pub fn manages_restaurant(&self, restaurant_id: Uuid) -> bool {
        self.is_operator() || (self.role == Role::RestaurantStaff && self.restaurant_id == Some(restaurant_id))
    }

    /// The order's customer, its restaurant's staff, its driver, or an operator.
    pub fn may_view_order(&self, order: &OrderParties) -> bool {
        match self.role {
            Role::Customer => order.customer_id == self.user_id,
            Role::RestaurantStaff => self.restaurant_id == Some(order.restaurant_id),
            Role::Driver => order.driver_id == Some(self.user_id),
            Role::Support | Role::Admin => true,
        }
    }

    /// Acting on an order needs the same standing as viewing it; what each
    /// party may then do is the state machine's call.
    pub fn may_act_on_order(&self, order: &OrderParties) -> bool {
        self.may_view_order(order)
    }

    /// Whether this caller sees where the order goes: a driver only while
    /// its delivery of the order is active (assigned, not finished); the
    /// other parties whenever they see the order.
    pub fn may_see_delivery_address(&self, order: &OrderParties, status: OrderStatus) -> bool {
        match self.role {
            Role::Driver => order.driver_id == Some(self.user_id) && !status.is_terminal(),
            _ => self.may_view_order(order),
        }
    }

    /// Whose order history this caller may list: a customer only their own.
    pub fn may_list_orders_of(&self, customer_id: Uuid) -> bool {
        self.is_operator() || (self.role == Role::Customer && self.user_id == customer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, restaurant_id: Option<Uuid>) -> Principal {
        Principal { user_id: Uuid::new_v4(), role, restaurant_id }
    }

    #[test]
    fn only_the_parties_and_operators_see_an_order() {
        let customer = principal(Role::Customer, None);
        let restaurant_id = Uuid::new_v4();
        let staff = principal(Role::RestaurantStaff, Some(restaurant_id));
        let driver = principal(Role::Driver, None);
        let order = OrderParties { customer_id: customer.user_id, restaurant_id, driver_id: Some(driver.user_id) };

        for allowed in [customer, staff, driver, principal(Role::Support, None), principal(Role::Admin, None)] {
            assert!(allowed.may_view_order(&order), "{allowed:?}");
        }
        let strangers = [
            principal(Role::Customer, None),
            principal(Role::RestaurantStaff, Some(Uuid::new_v4())),
            principal(Role::RestaurantStaff, None),
            principal(Role::Driver, None),
        ];
        for stranger in strangers {
            assert!(!stranger.may_view_order(&order), "{stranger:?}");
        }
        let unassigned = OrderParties { driver_id: None, ..order };
        assert!(!driver.may_view_order(&unassigned));
    }

    #[test]
    fn a_driver_sees_the_address_only_while_delivering() {
        let driver = principal(Role::Driver, None);
        let customer = principal(Role::Customer, None);
        let order = OrderParties {
            customer_id: customer.user_id,
            restaurant_id: Uuid::new_v4(),
            driver_id: Some(driver.user_id),
        };
        for status in [OrderStatus::Confirmed, OrderStatus::ReadyForPickup, OrderStatus::PickedUp] {
            assert!(driver.may_see_delivery_address(&order, status), "{status:?}");
        }
        for status in [OrderStatus::Delivered, OrderStatus::Cancelled] {
            assert!(!driver.may_see_delivery_address(&order, status), "{status:?}");
            assert!(customer.may_see_delivery_address(&order, status), "the customer always: {status:?}");
        }
        let other_driver = principal(Role::Driver, None);
        assert!(!other_driver.may_see_delivery_address(&order, OrderStatus::PickedUp));
    }

    #[test]
    fn staff_manage_only_their_restaurant() {
        let restaurant_id = Uuid::new_v4();
        let staff = principal(Role::RestaurantStaff, Some(restaurant_id));
        assert!(staff.manages_restaurant(restaurant_id));
        assert!(!staff.manages_restaurant(Uuid::new_v4()));
        assert!(!principal(Role::Customer, None).manages_restaurant(restaurant_id));
        assert!(principal(Role::Admin, None).manages_restaurant(restaurant_id));
    }

    #[test]
    fn customers_list_only_their_own_history() {
        let customer = principal(Role::Customer, None);
        assert!(customer.may_list_orders_of(customer.user_id));
        assert!(!customer.may_list_orders_of(Uuid::new_v4()));
        assert!(principal(Role::Support, None).may_list_orders_of(customer.user_id));
        assert!(!principal(Role::Driver, None).may_list_orders_of(customer.user_id));
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in [Role::Customer, Role::RestaurantStaff, Role::Driver, Role::Support, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
