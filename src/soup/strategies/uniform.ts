/** The uniform soup: every ingredient with the same weight (Wortsman et al., 2022). */
export function uniformCoefficients(count: number): number[] {
  return Array.from({ length: count }, () => 1);
}
