//! A restaurant's menu: categories of items, items with customizations, customizations with
//! options. Stored as rows and JSON (customizations), hence the serde derives.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::{AmountProblem, check_amount};
use crate::validation::{FieldError, excerpt, max_len, non_empty};

pub const MAX_CATEGORIES: usize = 100;
/// Items across all categories.
pub const MAX_ITEMS: usize = 1000;
/// Names of categories, customizations and options.
pub const MAX_NAME_CHARS: usize = 80;
pub const MAX_ITEM_NAME_CHARS: usize = 120;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
pub const MAX_OPTIONS: usize = 50;
pub const MAX_IMAGE_URL_CHARS: usize = 2048;

/// What is wrong with a menu. `place` names the offender by name (by position when the name is
/// empty), with its parents: `customization "Size" of item "Margherita" in category "Pizzas"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MenuError {
    #[error("the menu has {count} categories; at most {max} are allowed", max = MAX_CATEGORIES)]
    TooManyCategories { count: usize },
    #[error("the menu has {count} items; at most {max} are allowed", max = MAX_ITEMS)]
    TooManyItems { count: usize },
    #[error("{place}: {problem}")]
    Text { place: String, problem: FieldError },
    #[error("{place}: {field} {amount} {problem}")]
    Amount { place: String, field: &'static str, amount: Decimal, problem: AmountProblem },
    #[error("{place} allows no choice at all: max_choices must be at least 1")]
    MaxIsZero { place: String },
    #[error("{place} requires {min} choices but allows at most {max}")]
    MinAboveMax { place: String, min: u32, max: u32 },
    #[error("{place} has {count} options; at most {max} are allowed", max = MAX_OPTIONS)]
    TooManyOptions { place: String, count: usize },
    #[error("{place} allows {max} choices but has only {options} options")]
    MaxAboveOptions { place: String, max: u32, options: usize },
    #[error("{place} has id {id}, which {first} already has; ids must be unique across the menu")]
    DuplicateId { place: String, id: Uuid, first: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Menu {
    pub categories: Vec<MenuCategory>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuCategory {
    pub id: Uuid,
    pub name: String,
    pub items: Vec<MenuItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuItem {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub price: Decimal,
    pub available: bool,
    pub image_url: Option<String>,
    pub customizations: Vec<Customization>,
}

/// A choice to make about an item ("Size", "Extra toppings"): between `min_choices` and
/// `max_choices` distinct options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customization {
    pub id: Uuid,
    pub name: String,
    pub min_choices: u32,
    pub max_choices: u32,
    pub options: Vec<CustomizationOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomizationOption {
    pub id: Uuid,
    pub name: String,
    pub surcharge: Decimal,
    pub available: bool,
}

impl MenuItem {
    pub fn customization(&self, id: Uuid) -> Option<&Customization> {
        self.customizations.iter().find(|c| c.id == id)
    }
}

impl Customization {
    pub fn option(&self, id: Uuid) -> Option<&CustomizationOption> {
        self.options.iter().find(|o| o.id == id)
    }
}

impl Menu {
    /// Every rule a stored menu obeys; the first broken one is reported.
    pub fn validate(&self) -> Result<(), MenuError> {
        if self.categories.len() > MAX_CATEGORIES {
            return Err(MenuError::TooManyCategories { count: self.categories.len() });
        }
        let items: usize = self.categories.iter().map(|c| c.items.len()).sum();
        if items > MAX_ITEMS {
            return Err(MenuError::TooManyItems { count: items });
        }
        let mut check = Checker::default();
        for (i, category) in self.categories.iter().enumerate() {
            let place = label("category", &category.name, i);
            check.entry(&place, category.id, &category.name, MAX_NAME_CHARS)?;
            for (i, item) in category.items.iter().enumerate() {
                check.item(&format!("{} in {place}", label("item", &item.name, i)), item)?;
            }
        }
        Ok(())
    }
}

/// Walks a menu, remembering which place first used each id.
#[derive(Default)]
struct Checker {
    ids: HashMap<Uuid, String>,
}

impl Checker {
    /// The checks every menu entry gets: a unique id and a name of at most
    /// `max_name` characters.
    fn entry(&mut self, place: &str, id: Uuid, name: &str, max_name: usize) -> Result<(), MenuError> {
        if let Some(first) = self.ids.insert(id, place.to_owned()) {
            return Err(MenuError::DuplicateId { place: place.to_owned(), id, first });
        }
        text(place, non_empty("name", name).and_then(|()| max_len("name", name, max_name)))
    }

    fn item(&mut self, place: &str, item: &MenuItem) -> Result<(), MenuError> {
        self.entry(place, item.id, &item.name, MAX_ITEM_NAME_CHARS)?;
        amount(place, "price", item.price)?;
        text(place, max_len("description", &item.description, MAX_DESCRIPTION_CHARS))?;
        if let Some(url) = &item.image_url {
            text(place, non_empty("image_url", url).and_then(|()| max_len("image_url", url, MAX_IMAGE_URL_CHARS)))?;
        }
        for (i, customization) in item.customizations.iter().enumerate() {
            let place = format!("{} of {place}", label("customization", &customization.name, i));
            self.customization(&place, customization)?;
        }
        Ok(())
    }

    fn customization(&mut self, place: &str, customization: &Customization) -> Result<(), MenuError> {
        self.entry(place, customization.id, &customization.name, MAX_NAME_CHARS)?;
        if customization.options.len() > MAX_OPTIONS {
            return Err(MenuError::TooManyOptions { place: place.to_owned(), count: customization.options.len() });
        }
        let (min, max) = (customization.min_choices, customization.max_choices);
        if max == 0 {
            return Err(MenuError::MaxIsZero { place: place.to_owned() });
        }
        if min > max {
            return Err(MenuError::MinAboveMax { place: place.to_owned(), min, max });
        }
        if max as usize > customization.options.len() {
            return Err(MenuError::MaxAboveOptions {
                place: place.to_owned(),
                max,
                options: customization.options.len(),
            });
        }
        for (i, option) in customization.options.iter().enumerate() {
            let place = format!("{} of {place}", label("option", &option.name, i));
            self.entry(&place, option.id, &option.name, MAX_NAME_CHARS)?;
            amount(&place, "surcharge", option.surcharge)?;
        }
        Ok(())
    }
}

/// `kind "name"`, or `kind #n` when the name is blank; long names are cut.
fn label(kind: &str, name: &str, index: usize) -> String {
    if name.trim().is_empty() { format!("{kind} #{}", index + 1) } else { format!("{kind} \"{}\"", excerpt(name)) }
}

fn text(place: &str, checked: Result<(), FieldError>) -> Result<(), MenuError> {
    checked.map_err(|problem| MenuError::Text { place: place.to_owned(), problem })
}

fn amount(place: &str, field: &'static str, amount: Decimal) -> Result<(), MenuError> {
    check_amount(amount).map_err(|problem| MenuError::Amount { place: place.to_owned(), field, amount, problem })
}

#[cfg(test)]
pub(crate) mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    pub(crate) fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn option(n: u128, name: &str, surcharge: Decimal, available: bool) -> CustomizationOption {
        CustomizationOption { id: id(n), name: name.to_owned(), surcharge, available }
    }

    fn item(n: u128, name: &str, price: Decimal, customizations: Vec<Customization>) -> MenuItem {
        MenuItem {
            id: id(n),
            name: name.to_owned(),
            description: String::new(),
            price,
            available: true,
            image_url: None,
            customizations,
        }
    }

    /// Pizzas: Margherita 9.50 (Size: exactly one of Regular +0 / Large +3; Extra toppings: up to two
    /// of Olives +0.75 / Basil +0.50 / Anchovies +1.25, unavailable), Calzone 11.00 (unavailable).
    /// Drinks: Lemonade 3.20.
    pub(crate) fn sample() -> Menu {
        let size = Customization {
            id: id(100),
            name: "Size".into(),
            min_choices: 1,
            max_choices: 1,
            options: vec![option(1000, "Regular", dec!(0), true), option(1001, "Large", dec!(3.00), true)],
        };
        let toppings = Customization {
            id: id(101),
            name: "Extra toppings".into(),
            min_choices: 0,
            max_choices: 2,
            options: vec![
                option(1010, "Olives", dec!(0.75), true),
                option(1011, "Basil", dec!(0.50), true),
                option(1012, "Anchovies", dec!(1.25), false),
            ],
        };
        let calzone = MenuItem { available: false, ..item(12, "Calzone", dec!(11.00), vec![]) };
        Menu {
            categories: vec![
                MenuCategory {
                    id: id(1),
                    name: "Pizzas".into(),
                    items: vec![item(10, "Margherita", dec!(9.50), vec![size, toppings]), calzone],
                },
                MenuCategory {
                    id: id(2),
                    name: "Drinks".into(),
                    items: vec![item(20, "Lemonade", dec!(3.20), vec![])],
                },
            ],
        }
    }

    fn margherita(menu: &mut Menu) -> &mut MenuItem {
        &mut menu.categories[0].items[0]
    }

    /// The error `change` makes `validate` report, as text.
    fn error_after(change: impl FnOnce(&mut Menu)) -> String {
        let mut menu = sample();
        change(&mut menu);
        menu.validate().expect_err("the change should break a rule").to_string()
    }

    #[test]
    fn the_sample_is_valid() {
        assert_eq!(sample().validate(), Ok(()));
        assert_eq!(Menu::default().validate(), Ok(()));
    }

    #[test]
    fn lookups_by_id() {
        let menu = sample();
        let pizza = &menu.categories[0].items[0];
        let size = pizza.customization(id(100)).unwrap();
        assert_eq!(size.name, "Size");
        assert_eq!(size.option(id(1001)).unwrap().name, "Large");
        assert!(size.option(id(1010)).is_none());
        assert!(pizza.customization(id(1)).is_none());
    }

    #[test]
    fn names_are_required_and_bounded() {
        assert_eq!(error_after(|m| m.categories[1].name = " ".into()), "category #2: name is required");
        assert_eq!(error_after(|m| margherita(m).name.clear()), "item #1 in category \"Pizzas\": name is required");
        assert_eq!(
            error_after(|m| margherita(m).customizations[1].options[2].name.clear()),
            "option #3 of customization \"Extra toppings\" of item \"Margherita\" in category \"Pizzas\": name is required"
        );
        assert_eq!(
            error_after(|m| m.categories[1].items[0].name = "L".repeat(121)),
            format!(
                "item \"{}…\" in category \"Drinks\": name must be at most 120 characters long (it has 121)",
                "L".repeat(40)
            )
        );
        assert!(
            error_after(|m| m.categories[1].name = "C".repeat(81))
                .ends_with("name must be at most 80 characters long (it has 81)")
        );
        assert!(
            error_after(|m| margherita(m).customizations[1].options[2].name = "O".repeat(81))
                .ends_with("name must be at most 80 characters long (it has 81)")
        );
        let mut menu = sample();
        menu.categories[1].items[0].name = "é".repeat(120);
        menu.categories[1].name = "é".repeat(80);
        assert_eq!(menu.validate(), Ok(()));
    }

    #[test]
    fn a_customization_has_at_most_50_options() {
        let more = |m: &mut Menu, count: u128| {
            let extras = &mut margherita(m).customizations[1];
            let base = extras.options[0].clone();
            extras.options = (0..count).map(|n| CustomizationOption { id: id(50_000 + n), ..base.clone() }).collect();
        };
        assert_eq!(
            error_after(|m| more(m, 51)),
            "customization \"Extra toppings\" of item \"Margherita\" in category \"Pizzas\" has 51 options; \
             at most 50 are allowed"
        );
        let mut menu = sample();
        more(&mut menu, 50);
        assert_eq!(menu.validate(), Ok(()));
    }

    #[test]
    fn descriptions_and_image_urls_are_bounded() {
        assert_eq!(
            error_after(|m| margherita(m).description = "x".repeat(1001)),
            "item \"Margherita\" in category \"Pizzas\": description must be at most 1000 characters long (it has 1001)"
        );
        assert_eq!(
            error_after(|m| margherita(m).image_url = Some(String::new())),
            "item \"Margherita\" in category \"Pizzas\": image_url is required"
        );
        assert!(
            error_after(|m| margherita(m).image_url = Some("h".repeat(2049)))
                .contains("image_url must be at most 2048")
        );
    }

    #[test]
    fn prices_and_surcharges_are_amounts() {
        assert_eq!(
            error_after(|m| margherita(m).price = dec!(-1)),
            "item \"Margherita\" in category \"Pizzas\": price -1 is negative"
        );
        assert_eq!(
            error_after(|m| margherita(m).price = dec!(9.999)),
            "item \"Margherita\" in category \"Pizzas\": price 9.999 has more than 2 decimal places"
        );
        assert_eq!(
            error_after(|m| margherita(m).customizations[0].options[1].surcharge = dec!(0.125)),
            "option \"Large\" of customization \"Size\" of item \"Margherita\" in category \"Pizzas\": \
             surcharge 0.125 has more than 2 decimal places"
        );
        let mut menu = sample();
        margherita(&mut menu).price = dec!(0);
        assert_eq!(menu.validate(), Ok(()), "free items are allowed");
    }

    #[test]
    fn choice_bounds_fit_the_options() {
        let size = "customization \"Size\" of item \"Margherita\" in category \"Pizzas\"";
        assert_eq!(
            error_after(|m| margherita(m).customizations[0].max_choices = 0),
            format!("{size} allows no choice at all: max_choices must be at least 1")
        );
        assert_eq!(
            error_after(|m| margherita(m).customizations[0].min_choices = 2),
            format!("{size} requires 2 choices but allows at most 1")
        );
        assert_eq!(
            error_after(|m| margherita(m).customizations[0].max_choices = 3),
            format!("{size} allows 3 choices but has only 2 options")
        );
        let mut menu = sample();
        margherita(&mut menu).customizations[1].max_choices = 3;
        margherita(&mut menu).customizations[1].min_choices = 3;
        assert_eq!(menu.validate(), Ok(()), "all options may be required");
    }

    #[test]
    fn ids_are_unique_across_the_whole_menu() {
        assert_eq!(
            error_after(|m| m.categories[1].items[0].id = id(1001)),
            format!(
                "item \"Lemonade\" in category \"Drinks\" has id {}, which option \"Large\" of customization \"Size\" \
                 of item \"Margherita\" in category \"Pizzas\" already has; ids must be unique across the menu",
                id(1001)
            )
        );
        assert!(error_after(|m| m.categories[1].id = id(1)).starts_with("category \"Drinks\" has id"));
        assert!(
            error_after(|m| margherita(m).customizations[1].id = id(100))
                .starts_with("customization \"Extra toppings\"")
        );
    }

    #[test]
    fn size_limits() {
        let mut menu = sample();
        menu.categories = (0..=MAX_CATEGORIES as u128)
            .map(|n| MenuCategory { id: id(10_000 + n), name: format!("C{n}"), items: vec![] })
            .collect();
        assert_eq!(menu.validate(), Err(MenuError::TooManyCategories { count: 101 }));
        menu.categories.truncate(MAX_CATEGORIES);
        assert_eq!(menu.validate(), Ok(()));

        let items = |from: u128, count: u128| (from..from + count).map(|n| item(n, "Dish", dec!(1), vec![])).collect();
        let mut menu = Menu {
            categories: vec![
                MenuCategory { id: id(1), name: "A".into(), items: items(100_000, 600) },
                MenuCategory { id: id(2), name: "B".into(), items: items(200_000, 401) },
            ],
        };
        assert_eq!(menu.validate().unwrap_err().to_string(), "the menu has 1001 items; at most 1000 are allowed");
        menu.categories[1].items.pop();
        assert_eq!(menu.validate(), Ok(()));
    }

    #[test]
    fn menus_round_trip_through_json_with_exact_prices() {
        let menu = sample();
        let json = serde_json::to_string(&menu).unwrap();
        // Decimals travel as strings, so no float ever touches a price.
        assert!(json.contains("\"price\":\"9.50\""), "{json}");
        assert_eq!(serde_json::from_str::<Menu>(&json).unwrap(), menu);
    }
}
