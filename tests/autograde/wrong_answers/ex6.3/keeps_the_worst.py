def next_generation(population, scores, space, costs, budget, parents, children, generator):
    order = sorted(range(len(population)), key=lambda i: scores[i], reverse=True)  # highest first
    elite = [tuple(population[i]) for i in order[:parents]]
    out = list(elite)
    while len(out) < parents + children:
        a = elite[int(torch.randint(len(elite), (), generator=generator))]
        child = tuple(w if torch.rand((), generator=generator) > 0.3
                      else widths[int(torch.randint(len(widths), (), generator=generator))]
                      for w, widths in zip(a, space))
        if sum(c * w for c, w in zip(costs, child)) <= budget:
            out.append(child)
    return out
