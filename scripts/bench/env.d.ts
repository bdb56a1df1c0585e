// Types for the bench Worker's text-module imports (wrangler.bench.toml [[rules]] type = "Text").
declare module '*.sql' {
  const text: string;
  export default text;
}
