# The image the Helm chart runs: `foodfast` and `foodfast-gateway`, on a
# distroless base as uid 65532. protoc comes vendored with the build.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p foodfast-server -p foodfast-gateway \
 && cp target/release/foodfast target/release/foodfast-gateway /usr/local/bin/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/foodfast /usr/local/bin/foodfast-gateway /usr/local/bin/
USER 65532:65532
EXPOSE 50051 8080 9464 9465
ENTRYPOINT ["/usr/local/bin/foodfast"]
CMD ["serve"]
