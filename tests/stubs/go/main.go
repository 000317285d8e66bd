// A FoodFast client built on the generated Go stubs (gen/go), over gRPC: it
// signs in as a seeded customer, reads its profile, finds the nearest
// restaurant, prices a cart from its menu, places the order and follows it on
// a TrackOrder stream while cancelling it, and sends bad requests, printing
// one JSON line per step. tests/interop/test_stubs.py runs it next to the
// Python and TypeScript clients and compares what they saw.
//
// Environment: FOODFAST_GRPC_TARGET (host:port), FOODFAST_EMAIL, FOODFAST_PASSWORD.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	foodfastv1 "github.com/foodfast/foodfast/gen/go/foodfast/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Paris, where `foodfast seed` puts its restaurants.
var here = &foodfastv1.LatLng{Lat: 48.8566, Lng: 2.3522}

func say(line map[string]any) {
	out, err := json.Marshal(line)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go client:", err)
	os.Exit(1)
}

// The first available item that needs no customization choice.
func plainItem(menu *foodfastv1.GetMenuResponse) *foodfastv1.MenuItem {
	for _, category := range menu.GetCategories() {
	items:
		for _, item := range category.GetItems() {
			if !item.GetAvailable() {
				continue
			}
			for _, customization := range item.GetCustomizations() {
				if customization.GetMinChoices() > 0 {
					continue items
				}
			}
			return item
		}
	}
	return nil
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(os.Getenv("FOODFAST_GRPC_TARGET"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	accounts := foodfastv1.NewAccountServiceClient(conn)
	restaurants := foodfastv1.NewRestaurantServiceClient(conn)
	orders := foodfastv1.NewOrderServiceClient(conn)
	tracking := foodfastv1.NewTrackingServiceClient(conn)

	_, err = accounts.Login(ctx, &foodfastv1.LoginRequest{Email: os.Getenv("FOODFAST_EMAIL"), Password: "not the password"})
	say(refusal("wrong_password", err))

	login, err := accounts.Login(ctx, &foodfastv1.LoginRequest{
		Email:    os.Getenv("FOODFAST_EMAIL"),
		Password: os.Getenv("FOODFAST_PASSWORD"),
	})
	if err != nil {
		fail(err)
	}
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+login.GetTokens().GetAccessToken())
	profile, err := accounts.GetProfile(authed, &foodfastv1.GetProfileRequest{})
	if err != nil {
		fail(err)
	}
	say(map[string]any{"step": "profile", "email": profile.GetProfile().GetEmail(), "role": int32(profile.GetProfile().GetRole())})

	found, err := restaurants.SearchNearby(authed, &foodfastv1.SearchNearbyRequest{
		Lat: here.GetLat(), Lng: here.GetLng(), RadiusM: 20000, PageSize: 1,
	})
	if err != nil {
		fail(err)
	}
	if len(found.GetRestaurants()) == 0 {
		fail(fmt.Errorf("no restaurant near Paris: was `foodfast seed` run?"))
	}
	nearest := found.GetRestaurants()[0]
	say(map[string]any{"step": "nearest", "restaurant_id": nearest.GetRestaurantId(), "name": nearest.GetName()})

	menu, err := restaurants.GetMenu(authed, &foodfastv1.GetMenuRequest{RestaurantId: nearest.GetRestaurantId()})
	if err != nil {
		fail(err)
	}
	item := plainItem(menu)
	if item == nil {
		fail(fmt.Errorf("the menu has no plain item"))
	}
	quote, err := orders.Quote(authed, &foodfastv1.QuoteRequest{
		RestaurantId:    nearest.GetRestaurantId(),
		Items:           []*foodfastv1.CartItem{{ItemId: item.GetItemId(), Quantity: 2}},
		DeliveryAddress: &foodfastv1.Address{Location: here, Formatted: "1 Rue de Rivoli"},
	})
	if err != nil {
		fail(err)
	}
	total := quote.GetPrice().GetTotal()
	say(map[string]any{"step": "quote", "item_id": item.GetItemId(), "currency": total.GetCurrencyCode(), "total": total.GetAmount()})

	placed, err := orders.CreateOrder(authed, &foodfastv1.CreateOrderRequest{
		IdempotencyKey:  fmt.Sprintf("stubs-go-%d", time.Now().UnixNano()),
		RestaurantId:    nearest.GetRestaurantId(),
		Items:           []*foodfastv1.CartItem{{ItemId: item.GetItemId(), Quantity: 2}},
		DeliveryAddress: &foodfastv1.Address{Location: here, Formatted: "1 Rue de Rivoli"},
		PaymentMethodId: "pm_card_visa",
	})
	if err != nil {
		fail(err)
	}
	orderID := placed.GetOrder().GetOrderId()
	stream, err := tracking.TrackOrder(authed, &foodfastv1.TrackOrderRequest{OrderId: orderID})
	if err != nil {
		fail(err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetSnapshot() == nil {
		fail(fmt.Errorf("TrackOrder did not start with a snapshot: %v %v", first, err))
	}
	statuses := []int32{int32(first.GetSnapshot().GetOrder().GetStatus())}
	if _, err := orders.CancelOrder(authed, &foodfastv1.CancelOrderRequest{OrderId: orderID, Reason: "changed my mind"}); err != nil {
		fail(err)
	}
	for {
		message, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail(err)
		}
		if event := message.GetEvent(); event != nil {
			statuses = append(statuses, int32(event.GetStatus()))
		}
	}
	say(map[string]any{"step": "tracked", "total": placed.GetOrder().GetPrice().GetTotal().GetAmount(), "statuses": statuses})

	_, err = orders.GetOrder(authed, &foodfastv1.GetOrderRequest{OrderId: "not-an-id"})
	say(refusal("malformed_id", err))
}

// The status of a call that must fail.
func refusal(step string, err error) map[string]any {
	refused, ok := status.FromError(err)
	if err == nil || !ok {
		fail(fmt.Errorf("%s: the call answered %v", step, err))
	}
	return map[string]any{"step": step, "code": int(refused.Code()), "message": refused.Message()}
}
