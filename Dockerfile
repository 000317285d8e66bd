# The image the Helm chart runs: `foodfast` and `foodfast-gateway`, on a
# distroless base as uid 65532, with the browser pages the gateway serves.
# protoc comes vendored with the build.
FROM node:20-bookworm AS web
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web web
RUN node web/build.mjs

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p foodfast-server -p foodfast-gateway \
 && cp target/release/foodfast target/release/foodfast-gateway /usr/local/bin/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/foodfast /usr/local/bin/foodfast-gateway /usr/local/bin/
COPY --from=web /src/web/dist /usr/share/foodfast/web
ENV FOODFAST_GATEWAY_WEB_DIR=/usr/share/foodfast/web
USER 65532:65532
EXPOSE 50051 8080 9464 9465
ENTRYPOINT ["/usr/local/bin/foodfast"]
CMD ["serve"]
