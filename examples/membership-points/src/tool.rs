//! `get_points_balance`: the authenticated customer's membership points, derived from their orders.

use std::sync::Arc;

use fenliu_tool::{Tool, ToolContext, ToolError};
use fenliu_tools_commerce::tools::store_error;
use fenliu_tools_commerce::{DynOrderStore, Order, OrderStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Arguments of `get_points_balance`: none. The customer comes from the [`ToolContext`], never
/// from arguments, so no message or model can ask for somebody else's balance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// The customer's points balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PointsBalance {
    /// Points earned: one per whole currency unit of each delivered order, net of its refunds.
    pub points: u64,
    /// Delivered orders that earned points.
    pub delivered_orders: u32,
    /// What the delivered orders cost, net of refunds.
    pub qualifying_spend: f64,
    /// Points that will be added when the orders on their way are delivered.
    pub pending_points: u64,
    /// Orders placed, processed or shipped but not delivered yet.
    pub orders_on_the_way: u32,
}

/// Points an order is worth: whole currency units of its total net of refunds, never negative.
pub fn order_points(order: &Order) -> u64 {
    let net = order.total() - order.refunded();
    // `as` saturates for finite values; NaN and negatives earn nothing.
    if net.is_finite() && net >= 1.0 { net.floor() as u64 } else { 0 }
}

/// The balance of a set of orders (one customer's).
pub fn balance(orders: &[Order]) -> PointsBalance {
    let mut b = PointsBalance {
        points: 0,
        delivered_orders: 0,
        qualifying_spend: 0.0,
        pending_points: 0,
        orders_on_the_way: 0,
    };
    for order in orders {
        match order.status {
            OrderStatus::Delivered => {
                b.points = b.points.saturating_add(order_points(order));
                b.delivered_orders = b.delivered_orders.saturating_add(1);
                b.qualifying_spend += (order.total() - order.refunded()).max(0.0);
            }
            OrderStatus::Pending | OrderStatus::Processed | OrderStatus::Shipped => {
                b.pending_points = b.pending_points.saturating_add(order_points(order));
                b.orders_on_the_way = b.orders_on_the_way.saturating_add(1);
            }
            // Cancelled orders earn nothing; items being returned or exchanged earn nothing until
            // the return or exchange is settled.
            OrderStatus::Cancelled
            | OrderStatus::ReturnRequested
            | OrderStatus::ExchangeRequested => {}
        }
    }
    b.qualifying_spend = fenliu_tools_commerce::round_cents(b.qualifying_spend);
    b
}

/// `get_points_balance`: read-only, scoped to the authenticated customer.
pub struct GetPointsBalance {
    store: Arc<dyn DynOrderStore>,
}

impl GetPointsBalance {
    /// The tool over the shop's order store.
    pub fn new(store: Arc<dyn DynOrderStore>) -> Self {
        Self { store }
    }
}

impl Tool for GetPointsBalance {
    const NAME: &'static str = "get_points_balance";
    type Args = NoArgs;
    type Output = PointsBalance;
    type Error = ToolError;

    fn description(&self) -> &str {
        "The customer's membership points: one point per whole currency unit of delivered orders \
         (net of refunds), and the points still to come from orders on their way."
    }

    async fn call(&self, ctx: &ToolContext, _args: NoArgs) -> Result<PointsBalance, ToolError> {
        let orders =
            self.store.orders_of(&ctx.customer_id).await.map_err(|e| store_error(Self::NAME, e))?;
        // The store already filters by customer; checking again costs nothing and keeps the
        // guarantee local to this tool.
        let own: Vec<Order> =
            orders.into_iter().filter(|o| o.customer_id == ctx.customer_id).collect();
        Ok(balance(&own))
    }
}
