//! Order tools. Each one reads the customer from the [`ToolContext`], never from its arguments:
//! an order of another customer is refused with [`ToolError::Denied`] (logged as an attempted
//! cross-customer access) before any of its data leaves the store.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use fenliu_tool::{Tool, ToolContext, ToolError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::{Address, Order, OrderStatus, normalize_order_id};
use crate::store::{CancelReason, DynOrderStore, StoreError};

/// Maps a store error to what a model or customer may see.
pub fn store_error(tool: &str, error: StoreError) -> ToolError {
    let tool = tool.to_owned();
    match error {
        StoreError::NotFound { what } => ToolError::NotFound { tool, what },
        StoreError::NotOwner { .. } => {
            tracing::warn!(%tool, "refused cross-customer access");
            ToolError::Denied { tool, reason: "the order is not on this customer's account".into() }
        }
        StoreError::InvalidState { what, state, reason } => {
            ToolError::Conflict { tool, reason: format!("{what} is {state}: {reason}") }
        }
        StoreError::WrongDepartment { what, department } => {
            ToolError::Conflict { tool, reason: format!("{what} is in the {department} queue") }
        }
        StoreError::InvalidInput(reason) => ToolError::InvalidArguments { tool, reason },
        StoreError::Backend(e) => {
            tracing::error!(%tool, error = %e, "store backend failed");
            ToolError::Unavailable { tool }
        }
    }
}

fn parse_order_id(tool: &str, raw: &str) -> Result<String, ToolError> {
    normalize_order_id(raw).ok_or_else(|| ToolError::InvalidArguments {
        tool: tool.to_owned(),
        reason: "order_id must look like #W1234567".into(),
    })
}

/// Loads an order and checks that the authenticated customer owns it: every order tool and the
/// ticket tools go through this one check.
pub(crate) async fn owned_order(
    store: &dyn DynOrderStore,
    tool: &str,
    ctx: &ToolContext,
    raw_id: &str,
) -> Result<Order, ToolError> {
    let id = parse_order_id(tool, raw_id)?;
    match store.order(&id).await.map_err(|e| store_error(tool, e))? {
        None => Err(ToolError::NotFound { tool: tool.to_owned(), what: format!("order {id}") }),
        Some(order) if order.customer_id != ctx.customer_id => {
            Err(store_error(tool, StoreError::NotOwner { what: format!("order {id}") }))
        }
        Some(order) => Ok(order),
    }
}

/// Arguments naming one order.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderIdArgs {
    /// The order id, e.g. `#W2611340`.
    pub order_id: String,
}

/// `get_order`: one of the customer's orders with status, items, tracking and delivery dates.
pub struct GetOrder {
    store: Arc<dyn DynOrderStore>,
}

impl GetOrder {
    /// The tool over a store.
    pub fn new(store: Arc<dyn DynOrderStore>) -> Self {
        Self { store }
    }
}

impl Tool for GetOrder {
    const NAME: &'static str = "get_order";
    type Args = OrderIdArgs;
    type Output = Order;
    type Error = ToolError;

    fn description(&self) -> &str {
        "Look up one of the customer's orders by id: status, items, tracking numbers, estimated \
         delivery date, payments and refunds."
    }

    async fn call(&self, ctx: &ToolContext, args: OrderIdArgs) -> Result<Order, ToolError> {
        owned_order(self.store.as_ref(), Self::NAME, ctx, &args.order_id).await
    }
}

/// Arguments of `list_orders`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListOrdersArgs {
    /// Only orders in this status.
    #[serde(default)]
    pub status: Option<OrderStatus>,
}

/// A line of `list_orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderSummary {
    /// Order id.
    pub id: String,
    /// Status.
    pub status: OrderStatus,
    /// When placed.
    pub placed_at: DateTime<Utc>,
    /// Expected delivery.
    pub estimated_delivery: Option<NaiveDate>,
    /// Item names.
    pub items: Vec<String>,
    /// Total.
    pub total: f64,
}

/// `list_orders`: the customer's orders, newest first.
pub struct ListOrders {
    store: Arc<dyn DynOrderStore>,
}

impl ListOrders {
    /// The tool over a store.
    pub fn new(store: Arc<dyn DynOrderStore>) -> Self {
        Self { store }
    }
}

impl Tool for ListOrders {
    const NAME: &'static str = "list_orders";
    type Args = ListOrdersArgs;
    type Output = Vec<OrderSummary>;
    type Error = ToolError;

    fn description(&self) -> &str {
        "List the customer's orders, newest first, optionally only those in one status."
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: ListOrdersArgs,
    ) -> Result<Self::Output, ToolError> {
        let orders =
            self.store.orders_of(&ctx.customer_id).await.map_err(|e| store_error(Self::NAME, e))?;
        Ok(orders
            .into_iter()
            .filter(|o| args.status.is_none_or(|s| o.status == s))
            .map(|o| OrderSummary {
                total: o.total(),
                items: o.items.iter().map(|i| i.name.clone()).collect(),
                id: o.id,
                status: o.status,
                placed_at: o.placed_at,
                estimated_delivery: o.estimated_delivery,
            })
            .collect())
    }
}

/// Arguments of `cancel_order`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelOrderArgs {
    /// The order id, e.g. `#W2611340`.
    pub order_id: String,
    /// Why the customer cancels.
    pub reason: CancelReason,
}

/// `cancel_order`: cancels a pending order of the customer and refunds it. Call only after the
/// customer confirmed explicitly.
pub struct CancelOrder {
    store: Arc<dyn DynOrderStore>,
}

impl CancelOrder {
    /// The tool over a store.
    pub fn new(store: Arc<dyn DynOrderStore>) -> Self {
        Self { store }
    }
}

impl Tool for CancelOrder {
    const NAME: &'static str = "cancel_order";
    type Args = CancelOrderArgs;
    type Output = Order;
    type Error = ToolError;

    fn description(&self) -> &str {
        "Cancel one of the customer's pending orders and refund it to the original payment \
         methods. Only after the customer explicitly confirmed the cancellation."
    }

    async fn call(&self, ctx: &ToolContext, args: CancelOrderArgs) -> Result<Order, ToolError> {
        let id = parse_order_id(Self::NAME, &args.order_id)?;
        self.store
            .cancel_order(&ctx.customer_id, &id, args.reason)
            .await
            .map_err(|e| store_error(Self::NAME, e))
    }
}

/// Arguments of `change_order_address`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeAddressArgs {
    /// The order id, e.g. `#W2611340`.
    pub order_id: String,
    /// The new shipping address.
    pub address: Address,
}

/// `change_order_address`: changes the shipping address of a pending order of the customer.
pub struct ChangeOrderAddress {
    store: Arc<dyn DynOrderStore>,
}

impl ChangeOrderAddress {
    /// The tool over a store.
    pub fn new(store: Arc<dyn DynOrderStore>) -> Self {
        Self { store }
    }
}

impl Tool for ChangeOrderAddress {
    const NAME: &'static str = "change_order_address";
    type Args = ChangeAddressArgs;
    type Output = Order;
    type Error = ToolError;

    fn description(&self) -> &str {
        "Change the shipping address of one of the customer's pending orders. Only after the \
         customer explicitly confirmed the new address."
    }

    async fn call(&self, ctx: &ToolContext, args: ChangeAddressArgs) -> Result<Order, ToolError> {
        let id = parse_order_id(Self::NAME, &args.order_id)?;
        self.store
            .update_order_address(&ctx.customer_id, &id, &args.address)
            .await
            .map_err(|e| store_error(Self::NAME, e))
    }
}

/// The order tools over one store, ready for a [`ToolSet`](fenliu_tool::ToolSet).
pub fn order_tools(store: Arc<dyn DynOrderStore>) -> Vec<Arc<dyn fenliu_tool::DynTool>> {
    vec![
        Arc::new(GetOrder::new(Arc::clone(&store))),
        Arc::new(ListOrders::new(Arc::clone(&store))),
        Arc::new(CancelOrder::new(Arc::clone(&store))),
        Arc::new(ChangeOrderAddress::new(store)),
    ]
}
